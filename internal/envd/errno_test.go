package envd

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/wrennhq/wrenn"
)

func TestRefusal(t *testing.T) {
	t.Parallel()
	plain := errors.New("disk on fire")
	tests := []struct {
		name   string
		err    error
		absent string
		code   string // "": err comes back as it is
	}{
		{"missing, reading", syscall.ENOENT, wrenn.ENotFound, wrenn.ENotFound},
		{"missing, writing", syscall.ENOENT, wrenn.EInvalid, wrenn.EInvalid},
		{"not a directory", syscall.ENOTDIR, wrenn.ENotFound, wrenn.ENotFound},
		{"wrapped", fmt.Errorf("stat: %w", &fs.PathError{Op: "stat", Path: "/x", Err: syscall.ELOOP}), wrenn.ENotFound, wrenn.EInvalid},
		{"argument too long", fmt.Errorf("exec: start: %w", syscall.E2BIG), wrenn.EInvalid, wrenn.EInvalid},
		{"read-only", syscall.EROFS, wrenn.EInvalid, wrenn.EInvalid},
		{"permission", syscall.EACCES, wrenn.EInvalid, wrenn.EInvalid},
		{"busy", syscall.EBUSY, wrenn.EInvalid, wrenn.EConflict},
		{"text busy", syscall.ETXTBSY, wrenn.EInvalid, wrenn.EConflict},
		{"no space", syscall.ENOSPC, wrenn.EInvalid, wrenn.ETooLarge},
		{"quota", syscall.EDQUOT, wrenn.EInvalid, wrenn.ETooLarge},
		{"I/O error", syscall.EIO, wrenn.EInvalid, ""},
		{"out of descriptors", syscall.EMFILE, wrenn.EInvalid, ""},
		{"out of memory", syscall.ENOMEM, wrenn.EInvalid, ""},
		{"not an errno", plain, wrenn.EInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := refusal(tt.err, tt.absent, "cannot touch /x")
			if tt.code == "" {
				if got != tt.err {
					t.Errorf("got %v, want the error as it is", got)
				}
				return
			}
			e, ok := errors.AsType[*wrenn.Error](got)
			errno, _ := errors.AsType[syscall.Errno](tt.err)
			if !ok || e.Code != tt.code || e.Message != "cannot touch /x: "+errno.Error() {
				t.Errorf("got %v, want %s: cannot touch /x: %s", got, tt.code, errno.Error())
			}
		})
	}
}
