package envd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// bulkPort is the guest's end of the bulk channel as a plain blocking
// descriptor, outside Go's poller. Under emulation each system call is
// dear, and a port delivers at most one 4 KiB buffer per read: a blocking
// read is one call per buffer, where the poller's EAGAIN, park and wake
// took several. A file body goes out with sendfile(2), which hands the
// page cache's pages to the port without copying them.
type bulkPort struct {
	fd      int
	started bool // a byte has arrived: EOF from now on means the host went away
	closed  chan struct{}
	once    sync.Once
}

func openBulkPort(dev string) (*bulkPort, error) {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dev, err)
	}
	return &bulkPort{fd: fd, closed: make(chan struct{})}, nil
}

// Read is portConn.Read on the descriptor: until the host's first byte,
// EOF (no host connected) is waited out.
func (p *bulkPort) Read(b []byte) (int, error) {
	var waiting time.Time
	for {
		n, err := unix.Read(p.fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n > 0 {
			p.started = true
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		if p.started {
			return 0, io.EOF
		}
		wait := pollWait(&waiting)
		select {
		case <-p.closed:
			return 0, os.ErrClosed
		case <-time.After(wait):
		}
	}
}

func (p *bulkPort) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := unix.Write(p.fd, b[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// SendFile sends n bytes of f from off.
func (p *bulkPort) SendFile(f *os.File, off int64, n int) error {
	for n > 0 {
		k, err := unix.Sendfile(p.fd, int(f.Fd()), &off, n)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return err
		}
		if k == 0 {
			return io.ErrUnexpectedEOF // the file shrank
		}
		n -= k
	}
	return nil
}

// Close closes the descriptor, which drops what the host left unread.
func (p *bulkPort) Close() error {
	err := os.ErrClosed
	p.once.Do(func() {
		close(p.closed)
		err = unix.Close(p.fd)
	})
	return err
}

// fileSender is a connection that can send a file's bytes itself.
type fileSender interface {
	SendFile(f *os.File, off int64, n int) error
}
