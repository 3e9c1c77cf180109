package mock

import (
	"context"
	"errors"

	"github.com/wrennhq/wrenn/internal/vmm"
)

var _ vmm.VM = (*VM)(nil)

// VM is a fake virtual machine.
type VM struct {
	PIDFn      func() int
	DoneFn     func() <-chan struct{}
	StopFn     func(ctx context.Context) error
	SnapshotFn func(ctx context.Context, path, memory string) error
}

func (v *VM) PID() int {
	if v.PIDFn == nil {
		panic("mock.VM.PIDFn not set")
	}
	return v.PIDFn()
}

func (v *VM) Done() <-chan struct{} {
	if v.DoneFn == nil {
		panic("mock.VM.DoneFn not set")
	}
	return v.DoneFn()
}

func (v *VM) Stop(ctx context.Context) error {
	if v.StopFn == nil {
		return errors.New("mock.VM.StopFn not set")
	}
	return v.StopFn(ctx)
}

func (v *VM) Snapshot(ctx context.Context, path, memory string) error {
	if v.SnapshotFn == nil {
		return errors.New("mock.VM.SnapshotFn not set")
	}
	return v.SnapshotFn(ctx, path, memory)
}
