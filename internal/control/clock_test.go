package control_test

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told. Its After channels fire
// when Advance passes their time.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []clockWaiter
	waited  chan struct{} // signalled when After is called
}

type clockWaiter struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, waited: make(chan struct{}, 1)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
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
func (c *fakeClock) Advance(d time.Duration) {
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

// pending reports how many After calls wait to fire.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// AdvanceWaited is Advance once something waits on the clock, so that a
// goroutine pacing itself by After gets each tick: it waits (in real time,
// at most grace) for a waiter first. Nothing waiting is not an error: the
// clock then just moves.
func (c *fakeClock) AdvanceWaited(tb testing.TB, d, grace time.Duration) {
	tb.Helper()
	deadline := time.After(grace)
	for c.pending() == 0 {
		select {
		case <-c.waited:
		case <-deadline:
			c.Advance(d)
			return
		}
	}
	c.Advance(d)
}
