//go:build !amd64

package qemu

// hostTSCkHz is unknown off amd64; the guest calibrates as it can.
func hostTSCkHz() int { return 0 }
