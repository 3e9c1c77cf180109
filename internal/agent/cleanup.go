package agent

import (
	"context"
	"errors"
)

// cleanup is a stack of undo steps: each acquired resource pushes its
// release at once, and on failure they run in reverse order.
type cleanup struct {
	steps []func(context.Context) error
}

func (c *cleanup) add(f func(context.Context) error) { c.steps = append(c.steps, f) }

// run undoes every step, newest first, and returns what failed.
func (c *cleanup) run(ctx context.Context) error {
	var errs []error
	for i := len(c.steps) - 1; i >= 0; i-- {
		if err := c.steps[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	c.steps = nil
	return errors.Join(errs...)
}
