package envd

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// system is what Init changes in the guest.
type system struct {
	setClock    func(time.Time) error
	addEntropy  func([]byte) error
	setHostname func(string) error
}

// hostSystem changes the machine envd runs on.
func hostSystem() system {
	return system{setClock: setClock, addEntropy: addEntropy, setHostname: setHostname}
}

// listenerSystem is envd serving outside a VM, next to other work: Init
// still feeds the RNG (harmless) but leaves the clock and the hostname of
// the machine alone, logging what it would have done.
func listenerSystem(log *slog.Logger) system {
	return system{
		setClock: func(t time.Time) error {
			log.Info("init: not setting the clock outside a VM", slog.Time(attrClock, t))
			return nil
		},
		addEntropy: addEntropy,
		setHostname: func(name string) error {
			log.Info("init: not setting the hostname outside a VM", slog.String(attrHostname, name))
			return nil
		},
	}
}

func setClock(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
}

func setHostname(name string) error {
	return unix.Sethostname([]byte(name))
}

// addEntropy mixes b into the kernel's input pool with RNDADDENTROPY,
// crediting all of it, so the pool is reseeded at once (a plain write to
// /dev/urandom mixes without crediting or reseeding). Clones of one snapshot
// start with the same pool: this is what makes them diverge.
func addEntropy(b []byte) error {
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+(len(b)+3)/4*4)
	binary.NativeEndian.PutUint32(info[0:], uint32(len(b)*8))
	binary.NativeEndian.PutUint32(info[4:], uint32(len(b)))
	copy(info[8:], b)
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) {
		ioctlErr = ioctlPtr(int(fd), unix.RNDADDENTROPY, info)
	}); err != nil {
		return err
	}
	if ioctlErr != nil {
		return fmt.Errorf("RNDADDENTROPY: %w", ioctlErr)
	}
	return nil
}

func ioctlPtr(fd int, req uint, arg []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&arg[0])))
	if errno != 0 {
		return errno
	}
	return nil
}
