package agent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/wrennhq/wrenn/internal/envd"
)

// HealthConfig says how the agent checks that running guests answer.
type HealthConfig struct {
	// Interval between checks of each guest; 0 means 10 s.
	Interval time.Duration
	// Timeout is how long a guest has to answer a check; 0 means 10 s,
	// which a guest busy under TCG still meets.
	Timeout time.Duration
	// Grace is how long a guest may go without answering before its
	// sandbox is ended as failed; 0 means 30 s.
	Grace time.Duration
}

func (c HealthConfig) withDefaults() HealthConfig {
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Grace == 0 {
		c.Grace = 30 * time.Second
	}
	return c
}

// healthHost is what health checks act on: the Manager.
type healthHost interface {
	all() []*sandbox
	fail(sb *sandbox)
	reconnect(ctx context.Context, sb *sandbox, mach *machine) error
}

// health pings every running guest's agent. A guest that misses a check
// makes its sandbox unresponsive (reported to the control plane); one that
// answers again makes it running; one that stays silent past the grace
// period is ended as failed, freeing what it holds (a fork bomb, say, or a
// kernel that hung), and the control plane records it as error.
type health struct {
	c      HealthConfig
	host   healthHost
	now    func() time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

func newHealth(c HealthConfig, host healthHost, now func() time.Time) *health {
	ctx, cancel := context.WithCancel(context.Background())
	h := &health{c: c.withDefaults(), host: host, now: now, cancel: cancel, done: make(chan struct{})}
	go h.run(ctx)
	return h
}

func (h *health) close() {
	h.cancel()
	<-h.done
}

func (h *health) run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.c.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.round(ctx)
	}
}

// round checks every guest that serves work, all at once, so that one
// silent guest does not hold up the others' checks.
func (h *health) round(ctx context.Context) {
	var wg sync.WaitGroup
	for _, sb := range h.host.all() {
		if !slices.Contains(serving, sb.lifecycle()) {
			continue
		}
		wg.Go(func() { h.check(ctx, sb) })
	}
	wg.Wait()
}

// check pings sb's guest and moves sb as the answer says. A lifecycle
// operation in progress (a pause, say) is left alone: it decides.
func (h *health) check(ctx context.Context, sb *sandbox) {
	sb.mu.Lock()
	mach := sb.mach
	var c *envd.Client
	if mach != nil {
		c = mach.envd
	}
	sb.mu.Unlock()
	if c == nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, h.c.Timeout)
	err := c.Ping(pctx)
	cancel()
	if ctx.Err() != nil || !sb.op.TryLock() {
		return
	}
	defer sb.op.Unlock()
	sb.mu.Lock()
	lc, since, current := sb.lc, sb.since, sb.mach == mach
	sb.mu.Unlock()
	if !current || !slices.Contains(serving, lc) {
		return
	}
	if err != nil && errors.Is(err, envd.ErrClosed) {
		// The session ended (keepalives the guest missed close it), not
		// necessarily the guest: a guest that answers a new one is fine.
		err = h.host.reconnect(ctx, sb, mach)
	}
	now := h.now()
	switch {
	case err == nil && lc == lcUnresponsive:
		sb.move(lcRunning)
		sb.log.Info("guest answers again", slog.Duration("silent_for", now.Sub(since)))
	case err == nil:
	case lc == lcRunning:
		sb.mu.Lock()
		sb.since = now
		sb.moveLocked(lcUnresponsive)
		sb.mu.Unlock()
		sb.log.Warn("guest does not answer health checks", slog.Any(attrError, err))
	case now.Sub(since) >= h.c.Grace:
		sb.log.Error("guest has not answered for too long; ending the sandbox", slog.Duration("silent_for", now.Sub(since)))
		h.host.fail(sb)
	}
}

// reconnect gives a running sandbox whose guest agent session ended a new
// one, if the guest answers within the health check's timeout. Call with
// sb.op held.
func (m *Manager) reconnect(ctx context.Context, sb *sandbox, mach *machine) error {
	c, err := connectGuest(ctx, sb.dir, mach.vm, m.health.c.Timeout, m.log)
	if err != nil {
		return err
	}
	sb.mu.Lock()
	old := mach.envd
	mach.envd = c
	sb.mu.Unlock()
	logErr(sb.log, "close ended guest agent session", old.Close())
	sb.log.Info("guest agent session renewed")
	return nil
}
