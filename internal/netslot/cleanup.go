package netslot

import (
	"errors"
	"fmt"
)

// cleanup is a stack of undo steps: each resource registers its undo as soon
// as it exists, and a failure further on unwinds them in reverse.
type cleanup struct {
	steps []undoStep
}

type undoStep struct {
	name string
	fn   func() error
}

func (c *cleanup) add(name string, fn func() error) {
	c.steps = append(c.steps, undoStep{name: name, fn: fn})
}

// run undoes every step, newest first, and reports all that failed.
func (c *cleanup) run() error {
	var errs []error
	for i := len(c.steps) - 1; i >= 0; i-- {
		if err := c.steps[i].fn(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.steps[i].name, err))
		}
	}
	c.steps = nil
	return errors.Join(errs...)
}
