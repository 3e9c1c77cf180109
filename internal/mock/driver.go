package mock

import (
	"context"
	"errors"

	"github.com/wrennhq/wrenn/internal/vmm"
)

var _ vmm.Driver = (*Driver)(nil)

// Driver is a fake VMM driver.
type Driver struct {
	NameFn  func() string
	StartFn func(ctx context.Context, c vmm.Config) (vmm.VM, error)
	AdoptFn func(ctx context.Context, c vmm.Config, pid int) (vmm.VM, error)
}

func (d *Driver) Name() string {
	if d.NameFn == nil {
		panic("mock.Driver.NameFn not set")
	}
	return d.NameFn()
}

func (d *Driver) Start(ctx context.Context, c vmm.Config) (vmm.VM, error) {
	if d.StartFn == nil {
		return nil, errors.New("mock.Driver.StartFn not set")
	}
	return d.StartFn(ctx, c)
}

func (d *Driver) Adopt(ctx context.Context, c vmm.Config, pid int) (vmm.VM, error) {
	if d.AdoptFn == nil {
		return nil, errors.New("mock.Driver.AdoptFn not set")
	}
	return d.AdoptFn(ctx, c, pid)
}
