// Package clocktest is a fake clock for tests of code that takes its time
// from an injected clock (a now func, an after func). Only tests import it.
package clocktest

import (
	"sync"
	"testing"
	"time"
)

// Clock is a clock that moves only when told, safe for concurrent use. Its After channels fire
// when Advance passes their time.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []clockWaiter
	waited  chan struct{} // signalled when After is called
}

type clockWaiter struct {
	at time.Time
	c  chan time.Time
}

// New returns a Clock reading now.
func New(now time.Time) *Clock {
	return &Clock{now: now, waited: make(chan struct{}, 1)}
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After is time.After on this clock.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, clockWaiter{at: c.now.Add(d), c: ch})
	select {
	case c.waited <- struct{}{}:
	default:
	}
	return ch
}

// Advance moves the clock by d and fires what is due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.c <- c.now
	}
	c.waiters = kept
}

// Pending reports how many After calls wait to fire.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// AdvanceWaited is Advance once something waits on the clock, so that a
// goroutine pacing itself by After gets each tick: it waits (in real time,
// at most grace) for a waiter first. Nothing waiting is not an error: the
// clock then just moves.
func (c *Clock) AdvanceWaited(tb testing.TB, d, grace time.Duration) {
	tb.Helper()
	deadline := time.After(grace)
	for c.Pending() == 0 {
		select {
		case <-c.waited:
		case <-deadline:
			c.Advance(d)
			return
		}
	}
	c.Advance(d)
}
