package envd

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directAlign is the alignment O_DIRECT asks of buffers, offsets and
// lengths: a page, more than any disk's logical block.
const directAlign = 4096

// uploadSink writes an upload's bytes into its temporary file: whole
// aligned blocks with O_DIRECT where the file system takes it, so the
// disk reads them straight from the buffer, with no copy into the page
// cache (under emulation a copy is the dearest part of a write); the
// rest (a last partial block; file systems without O_DIRECT, as tmpfs)
// through the page cache.
type uploadSink struct {
	f   *os.File
	dfd int // the file opened O_DIRECT; -1 for none
	off int64
}

func newUploadSink(f *os.File) *uploadSink {
	dfd, err := unix.Open(f.Name(), unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		dfd = -1
	}
	return &uploadSink{f: f, dfd: dfd}
}

// write writes p at the end of what was written.
func (u *uploadSink) write(p []byte) error {
	if u.dfd >= 0 && len(p)%directAlign == 0 && u.off%directAlign == 0 &&
		len(p) > 0 && uintptr(unsafe.Pointer(&p[0]))%directAlign == 0 {
		for len(p) > 0 {
			n, err := unix.Pwrite(u.dfd, p, u.off)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EINVAL) && n <= 0 {
				u.close() // the file system refuses after all: the page cache
				break
			}
			if err != nil {
				return err
			}
			p = p[n:]
			u.off += int64(n)
		}
		if len(p) == 0 {
			return nil
		}
	}
	n, err := u.f.WriteAt(p, u.off)
	u.off += int64(n)
	return err
}

func (u *uploadSink) close() {
	if u.dfd >= 0 {
		unix.Close(u.dfd)
		u.dfd = -1
	}
}

// alignedBuffer is n bytes of fresh anonymous memory, page aligned.
func alignedBuffer(n int) ([]byte, func(), error) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	return b, func() { unix.Munmap(b) }, nil
}

// sinkWriter writes into an uploadSink from a goroutine of its own, one
// buffer while the caller fills the other. After a failed write it takes
// no more, and wait reports the failure.
type sinkWriter struct {
	sink *uploadSink
	free chan []byte
	full chan []byte
	done chan error
}

func newSinkWriter(sink *uploadSink, bufs ...[]byte) *sinkWriter {
	w := &sinkWriter{sink: sink, free: make(chan []byte, len(bufs)), full: make(chan []byte, len(bufs)), done: make(chan error, 1)}
	for _, b := range bufs {
		w.free <- b[:cap(b)]
	}
	go func() {
		var err error
		for p := range w.full {
			if err == nil {
				err = sink.write(p)
			}
			w.free <- p[:cap(p)]
		}
		w.done <- err
	}()
	return w
}

// next is a buffer to fill, once the disk is done with it.
func (w *sinkWriter) next() []byte { return <-w.free }

// write hands p, filled from next, to the disk.
func (w *sinkWriter) write(p []byte) { w.full <- p }

// wait waits for the writes handed over and returns the first failure.
// Call it once.
func (w *sinkWriter) wait() error {
	close(w.full)
	return <-w.done
}
