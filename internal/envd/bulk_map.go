package envd

import (
	"errors"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// errFileShrank is a download whose file was cut short while a mapping of
// it was read.
var errFileShrank = errors.New("the file was cut short while it was read")

// mapSum adds to sum the next chunk of f from off, read
// through a shared mapping of the page cache rather than copied into a
// buffer: a download's bytes then go through the guest's CPU once, for
// their checksum, and sendfile(2) sends the same pages (1.3x the streamed
// download rate under TCG, with the readahead below). It returns the chunk's
// length, 0 when f is at its end as fstat(2) sees it or cannot be mapped
// here (the caller reads instead). A file truncated under the mapping
// faults; that is errFileShrank, not a crash.
func mapSum(sum bodySum, f *os.File, off int64) (n int, err error) {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Size <= off || off%int64(os.Getpagesize()) != 0 {
		return 0, nil
	}
	n = int(min(st.Size-off, bulkChunk))
	// Have the disk read this chunk and the next at once, in the
	// background, rather than page by page as the mapping is populated:
	// the next one then loads while this one is summed and sent.
	_ = unix.Fadvise(int(f.Fd()), off, 2*bulkChunk, unix.FADV_WILLNEED)
	m, err := unix.Mmap(int(f.Fd()), off, n, unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return 0, nil
	}
	defer unix.Munmap(m)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			n, err = 0, errFileShrank
		}
	}()
	sum.Write(m)
	return n, nil
}
