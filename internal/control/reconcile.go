package control

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/wrennhq/wrenn"
)

// HostLister is the part of a host agent the reconciler needs.
type HostLister interface {
	ListSandboxes(ctx context.Context) ([]wrenn.SandboxState, error)
	DestroySandbox(ctx context.Context, id string) error
}

// ReconcileStore is the part of the store the reconciler needs.
type ReconcileStore interface {
	SandboxesByStatus(ctx context.Context, statuses ...wrenn.SandboxStatus) ([]*wrenn.Sandbox, error)
	TransitionSandbox(ctx context.Context, teamID, id string, from []wrenn.SandboxStatus, to wrenn.SandboxStatus, at time.Time) (*wrenn.Sandbox, error)
}

// ReconcilerConfig wires a Reconciler.
type ReconcilerConfig struct {
	Store  ReconcileStore
	Host   HostLister
	Now    func() time.Time
	Logger *slog.Logger
	// Interval between passes; 0 means DefaultReconcileInterval.
	Interval time.Duration
	// PendingGrace is how long a sandbox may stay pending before a
	// creation that never finished is given up; 0 means 10 minutes.
	PendingGrace time.Duration
}

// DefaultReconcileInterval is how often the reconciler compares records
// with what the host agent holds.
const DefaultReconcileInterval = 2 * time.Second

// Reconciler keeps the records true to the host: sandboxes whose VM died
// become error and are cleaned up, idle sandboxes past their timeout are
// destroyed and become stopped, and VMs nobody has a record of are
// destroyed.
type Reconciler struct {
	c ReconcilerConfig
}

// NewReconciler returns a Reconciler.
func NewReconciler(c ReconcilerConfig) *Reconciler {
	if c.Interval == 0 {
		c.Interval = DefaultReconcileInterval
	}
	if c.PendingGrace == 0 {
		c.PendingGrace = 10 * time.Minute
	}
	return &Reconciler{c: c}
}

// Run reconciles every interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(r.c.Interval)
	defer t.Stop()
	for {
		if err := r.Once(ctx); err != nil && ctx.Err() == nil {
			r.c.Logger.WarnContext(ctx, "reconcile", slog.Any(attrError, err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Once runs one pass.
func (r *Reconciler) Once(ctx context.Context) error {
	// Records first: a sandbox created between the two reads is then on
	// the host but not yet in this list, and is left alone below.
	records, err := r.c.Store.SandboxesByStatus(ctx, wrenn.StatusPending, wrenn.StatusRunning, wrenn.StatusPaused)
	if err != nil {
		return fmt.Errorf("list records: %w", err)
	}
	states, err := r.c.Host.ListSandboxes(ctx)
	if err != nil {
		return fmt.Errorf("list host sandboxes: %w", err)
	}
	onHost := make(map[string]bool, len(states))
	for _, st := range states {
		onHost[st.ID] = st.Running
	}
	known := make(map[string]bool, len(records))
	now := r.c.Now().UTC()
	for _, sb := range records {
		known[sb.ID] = true
		running, held := onHost[sb.ID]
		switch {
		case sb.Status == wrenn.StatusRunning && !running:
			r.fail(ctx, sb, held, "its vm is gone")
		case sb.Status == wrenn.StatusPending && !held && now.Sub(sb.CreatedAt) > r.c.PendingGrace:
			r.fail(ctx, sb, false, "its creation never finished")
		case sb.Status == wrenn.StatusRunning && idle(sb, now):
			r.expire(ctx, sb)
		}
	}
	for _, st := range states {
		if !known[st.ID] {
			r.c.Logger.WarnContext(ctx, "destroying a vm without a live record", slog.String(attrSandboxID, st.ID))
			if err := r.c.Host.DestroySandbox(ctx, st.ID); err != nil {
				r.c.Logger.ErrorContext(ctx, "destroy orphaned vm", slog.String(attrSandboxID, st.ID), slog.Any(attrError, err))
			}
		}
	}
	return nil
}

func idle(sb *wrenn.Sandbox, now time.Time) bool {
	if sb.TimeoutSec <= 0 {
		return false
	}
	last := sb.CreatedAt
	if sb.LastActiveAt != nil {
		last = *sb.LastActiveAt
	}
	return now.Sub(last) >= time.Duration(sb.TimeoutSec)*time.Second
}

// fail records sb as error and has the host free whatever it still holds.
func (r *Reconciler) fail(ctx context.Context, sb *wrenn.Sandbox, held bool, why string) {
	log := r.c.Logger.With(slog.String(attrSandboxID, sb.ID), slog.String(attrTeamID, sb.TeamID))
	if _, err := r.c.Store.TransitionSandbox(ctx, sb.TeamID, sb.ID, []wrenn.SandboxStatus{sb.Status}, wrenn.StatusError, r.c.Now().UTC()); err != nil {
		if wrenn.ErrorCode(err) != wrenn.EConflict && wrenn.ErrorCode(err) != wrenn.ENotFound {
			log.ErrorContext(ctx, "record sandbox error", slog.Any(attrError, err))
		}
		return // someone else moved it on
	}
	log.WarnContext(ctx, "sandbox failed", slog.String("why", why))
	if held {
		if err := r.c.Host.DestroySandbox(ctx, sb.ID); err != nil {
			log.ErrorContext(ctx, "clean up failed sandbox", slog.Any(attrError, err))
		}
	}
}

// expire destroys an idle sandbox and records it stopped.
func (r *Reconciler) expire(ctx context.Context, sb *wrenn.Sandbox) {
	log := r.c.Logger.With(slog.String(attrSandboxID, sb.ID), slog.String(attrTeamID, sb.TeamID))
	if err := r.c.Host.DestroySandbox(ctx, sb.ID); err != nil {
		log.ErrorContext(ctx, "destroy idle sandbox", slog.Any(attrError, err))
		return
	}
	if _, err := r.c.Store.TransitionSandbox(ctx, sb.TeamID, sb.ID, []wrenn.SandboxStatus{wrenn.StatusRunning}, wrenn.StatusStopped, r.c.Now().UTC()); err != nil {
		log.ErrorContext(ctx, "record idle sandbox stopped", slog.Any(attrError, err))
		return
	}
	log.InfoContext(ctx, "idle sandbox stopped", slog.Int("timeout_sec", sb.TimeoutSec))
}
