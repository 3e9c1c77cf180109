package agent

import (
	"context"
	"errors"
	"slices"
)

// cleanup is a stack of undo steps: each acquired resource pushes its
// release at once, and they run in reverse order. A step that fails stays
// on the stack, so running it again (a retried destroy) retries exactly
// what is still held.
type cleanup struct {
	steps []cleanupStep
}

type cleanupStep struct {
	f func(context.Context) error
	// background: the step may finish after the caller has answered
	// (runThen), as a network slot's teardown may once the VM is gone.
	background bool
}

func (c *cleanup) add(f func(context.Context) error) {
	c.steps = append(c.steps, cleanupStep{f: f})
}

// addBackground adds a step that runThen may leave to run later.
func (c *cleanup) addBackground(f func(context.Context) error) {
	c.steps = append(c.steps, cleanupStep{f: f, background: true})
}

// run undoes every step, newest first, and returns what failed; the
// failed steps are kept for the next run.
func (c *cleanup) run(ctx context.Context) error {
	return c.runThen(ctx, nil)
}

// runThen undoes every step, newest first, handing the background ones
// to later (in that order) instead of running them; with later nil it
// runs them too. It returns what failed of the steps it ran and keeps
// those steps, in their order, for the next run.
func (c *cleanup) runThen(ctx context.Context, later func(func(context.Context) error)) error {
	var errs []error
	var failed []cleanupStep
	for i := len(c.steps) - 1; i >= 0; i-- {
		s := c.steps[i]
		if s.background && later != nil {
			later(s.f)
			continue
		}
		if err := s.f(ctx); err != nil {
			errs = append(errs, err)
			failed = append(failed, s)
		}
	}
	slices.Reverse(failed) // the stack keeps the oldest first
	c.steps = failed
	return errors.Join(errs...)
}
