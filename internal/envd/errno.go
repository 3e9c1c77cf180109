package envd

import (
	"errors"
	"syscall"

	"github.com/wrennhq/wrenn"
)

// refusal returns err as the guest's refusal of a request when err is a
// system call failing for a reason the request itself gives (a path the
// guest cannot write, an argument too long, a disk too small): a
// *wrenn.Error saying what could not be done and why, which the host
// passes on to the client. Any other error (an I/O fault, envd out of
// file descriptors) is returned as it is: a fault of the guest.
//
// absent is the code of a missing file or directory (ENOENT, ENOTDIR):
// not found for what was asked to be read, invalid for a path to write,
// since a write makes the directories it needs and only a file system
// that takes no new files (/proc, /sys) leaves one missing.
func refusal(err error, absent, what string) error {
	errno, ok := errors.AsType[syscall.Errno](err)
	if !ok {
		return err
	}
	code := absent
	if errno != syscall.ENOENT && errno != syscall.ENOTDIR {
		code = errnoCode(errno)
	}
	if code == "" {
		return err
	}
	return wrenn.Errorf(code, "%s: %s", what, errno.Error())
}

// errnoCode is the one mapping of errnos to codes: the code of an errno
// that is the request's fault, or "" for one that is the guest's.
func errnoCode(errno syscall.Errno) string {
	switch errno {
	case syscall.EACCES, syscall.EPERM, syscall.EROFS, syscall.EISDIR, syscall.ELOOP,
		syscall.ENAMETOOLONG, syscall.EINVAL, syscall.E2BIG, syscall.EXDEV, syscall.ENXIO,
		syscall.ENODEV, syscall.EOPNOTSUPP, syscall.EMLINK:
		return wrenn.EInvalid
	case syscall.EBUSY, syscall.ETXTBSY:
		return wrenn.EConflict
	case syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG:
		return wrenn.ETooLarge
	}
	return ""
}
