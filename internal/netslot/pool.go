package netslot

import (
	"context"
	"errors"
	"time"
)

// Pool-filler retry delays after a failed build.
const (
	fillRetryMin = 100 * time.Millisecond
	fillRetryMax = 10 * time.Second
)

// fill keeps PoolSize slots ready, one build at a time, until ctx ends. It
// wakes when Acquire takes a slot or Release frees an index.
func (m *Manager) fill(ctx context.Context) {
	defer close(m.fillDone)
	var delay time.Duration
	for {
		i, ok := m.reserveForPool()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-m.kick:
			}
			continue
		}
		s, err := m.l.build(ctx, i)
		m.settleBuild(i, s, err, stateReady, true)
		switch {
		case err == nil:
			delay = 0
			continue
		case ctx.Err() != nil:
			return
		case errors.Is(err, errExists):
			m.log.Warn("slot index held by leftovers; Sweep removes them", logSlot, i, logErr, err)
			continue
		}
		delay = min(max(2*delay, fillRetryMin), fillRetryMax)
		m.log.Error("build pool slot", logSlot, i, logErr, err, logRetryIn, delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// reserveForPool reserves an index to build a pool slot on, if the pool is
// short of one and an index is free.
func (m *Manager) reserveForPool() (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || len(m.ready)+m.poolBuilding >= m.l.poolSize {
		return 0, false
	}
	i, ok := m.allocLocked()
	if ok {
		m.poolBuilding++
	}
	return i, ok
}

func (m *Manager) kickFill() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}
