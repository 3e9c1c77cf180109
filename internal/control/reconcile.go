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
	// StopIdleSandbox records a running sandbox stopped unless it has had
	// activity after idleSince; EConflict if it has, or is not running.
	StopIdleSandbox(ctx context.Context, teamID, id string, idleSince, at time.Time) (*wrenn.Sandbox, error)
	UpdateSandbox(ctx context.Context, sb *wrenn.Sandbox) error
	GetTemplate(ctx context.Context, teamID, name string) (*wrenn.Template, error)
	// DeleteStoppedBefore deletes the stopped sandboxes last updated
	// before before.
	DeleteStoppedBefore(ctx context.Context, before time.Time) (int64, error)
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
	// SettleGrace is how long a record and the host may disagree (a
	// sandbox missing from the host, paused on one side only) before the
	// reconciler acts: a pause, resume or snapshot in flight looks just
	// like that until its record is written. 0 means 10 seconds.
	SettleGrace time.Duration
	// AutoPause pauses an idle sandbox whose timeout pauses it
	// (Service.AutoPause); nil destroys idle sandboxes whatever they ask.
	AutoPause func(ctx context.Context, sb *wrenn.Sandbox, idleSince, now time.Time)
	// StoppedRetention is how long the record of a stopped sandbox is
	// kept, to be read back, before it is deleted; 0 means
	// DefaultStoppedRetention.
	StoppedRetention time.Duration
	// HostID, if set, limits the reconciler to the sandboxes recorded on
	// that host, Host's (a fleet, issue 13: one reconciler per host);
	// "" compares every record with Host, as with one agent.
	HostID string
}

// DefaultStoppedRetention is how long a destroyed sandbox stays readable.
const DefaultStoppedRetention = 24 * time.Hour

// DefaultReconcileInterval is how often the reconciler compares records
// with what the host agent holds.
const DefaultReconcileInterval = 2 * time.Second

// Reconciler keeps the records and the host in agreement: sandboxes whose
// VM died become error and are cleaned up, idle sandboxes past their
// timeout are paused or destroyed (as each asks) and become stopped, stopped records
// are deleted after a retention period, and VMs and template files
// nobody has a record of are destroyed. Where an operation's answer was
// lost (an agent or a control plane died), the record wins: the client was
// never told the operation happened, so a pause or resume the host made is
// undone, and a sandbox the host no longer holds becomes error.
type Reconciler struct {
	c ReconcilerConfig

	// disagree holds when each disagreement between a record and the host
	// was first seen; the next pass forgets those gone by then.
	disagree map[string]time.Time
	// silent holds the sandboxes the host reports unresponsive, so that
	// each is logged once.
	silent map[string]bool
	// away: the last pass could not reach the host (hostloss.go).
	away bool
}

// NewReconciler returns a Reconciler.
func NewReconciler(c ReconcilerConfig) *Reconciler {
	if c.Interval == 0 {
		c.Interval = DefaultReconcileInterval
	}
	if c.PendingGrace == 0 {
		c.PendingGrace = 10 * time.Minute
	}
	if c.SettleGrace == 0 {
		c.SettleGrace = 10 * time.Second
	}
	if c.StoppedRetention == 0 {
		c.StoppedRetention = DefaultStoppedRetention
	}
	return &Reconciler{c: c, disagree: make(map[string]time.Time), silent: make(map[string]bool)}
}

// Run reconciles every interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(r.c.Interval)
	defer t.Stop()
	for {
		wasAway := r.away
		if err := r.Once(ctx); err != nil && ctx.Err() == nil {
			// A host that cannot be reached is said once, not every pass.
			level := slog.LevelWarn
			if wasAway && r.away {
				level = slog.LevelDebug
			}
			r.c.Logger.Log(ctx, level, "reconcile", slog.String("host_id", r.c.HostID), slog.Any(attrError, err))
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
	// The host first, then the records. Every VM has its record written
	// (pending) before the agent is asked to start it, so a VM in this
	// list has a record by the time the records are read, unless it has
	// since been destroyed or consumed, which makes destroying it again
	// harmless. Read the other way round, a create landing between the two
	// reads would look like an orphan and be destroyed. A record that
	// changed after the host was asked looks like a disagreement, which
	// waits for SettleGrace below.
	states, err := r.c.Host.ListSandboxes(ctx)
	if err != nil {
		r.away = true
		return fmt.Errorf("list host sandboxes: %w", err)
	}
	records, err := r.c.Store.SandboxesByStatus(ctx, wrenn.StatusPending, wrenn.StatusRunning, wrenn.StatusPaused,
		wrenn.StatusMissing)
	if err != nil {
		return fmt.Errorf("list records: %w", err)
	}
	onHost := make(map[string]wrenn.SandboxState, len(states))
	for _, st := range states {
		onHost[st.ID] = st
	}
	known := make(map[string]bool, len(records))
	now := r.c.Now().UTC()
	seen := make(map[string]time.Time)
	// lastingKey reports whether the disagreement named k has lasted
	// SettleGrace.
	lastingKey := func(k string) bool {
		first, ok := r.disagree[k]
		if !ok {
			first = now
		}
		seen[k] = first
		return now.Sub(first) >= r.c.SettleGrace
	}
	// lasting is lastingKey for the disagreement what about sb as
	// recorded now.
	lasting := func(sb *wrenn.Sandbox, what string) bool {
		return lastingKey(sb.ID + " " + what + " " + sb.LastUpdated.String())
	}
	silent := make(map[string]bool)
	var back comeback
	for _, sb := range records {
		known[sb.ID] = true
		if r.c.HostID != "" && sb.HostID != r.c.HostID {
			continue // another host's
		}
		st, held := onHost[sb.ID]
		if st.Unresponsive {
			silent[sb.ID] = true
			if !r.silent[sb.ID] {
				r.c.Logger.WarnContext(ctx, "the sandbox's guest does not answer its host agent", slog.String(attrSandboxID, sb.ID),
					slog.String(attrTeamID, sb.TeamID))
			}
		}
		switch {
		case sb.Status == wrenn.StatusMissing:
			// Its host was lost and answers again (hostloss.go).
			r.found(ctx, sb, st, held, &back)
		case sb.Status == wrenn.StatusRunning && held && !st.Running && !st.Paused:
			r.fail(ctx, sb, held, "its vm is gone")
		case sb.Status == wrenn.StatusRunning && st.Paused:
			// A pause the record missed: its client was not told it
			// happened, so it is undone.
			if lasting(sb, "paused") {
				r.unpause(ctx, sb)
			}
		case sb.Status == wrenn.StatusRunning && !held:
			if lasting(sb, "missing") {
				r.fail(ctx, sb, held, "the host does not hold it")
			}
		case sb.Status == wrenn.StatusPaused && st.Running:
			// A resume the record missed: back to what the record says.
			if lasting(sb, "running") {
				r.repause(ctx, sb)
			}
		case sb.Status == wrenn.StatusPaused && !st.Paused:
			if lasting(sb, "missing") {
				r.fail(ctx, sb, held, "its snapshot is gone")
			}
		case sb.Status == wrenn.StatusPending && !held && now.Sub(sb.CreatedAt) > r.c.PendingGrace:
			r.fail(ctx, sb, false, "its creation never finished")
		case sb.Status == wrenn.StatusRunning && idle(sb, now) && sb.AutoPause && r.c.AutoPause != nil:
			r.c.AutoPause(ctx, sb, now.Add(-time.Duration(sb.TimeoutSec)*time.Second), now)
		case sb.Status == wrenn.StatusRunning && idle(sb, now):
			r.expire(ctx, sb, now)
		}
	}
	if n, err := r.c.Store.DeleteStoppedBefore(ctx, now.Add(-r.c.StoppedRetention)); err != nil {
		r.c.Logger.WarnContext(ctx, "delete stopped sandboxes past their retention", slog.Any(attrError, err))
	} else if n > 0 {
		r.c.Logger.DebugContext(ctx, "deleted stopped sandboxes past their retention", slog.Int64("count", n))
	}
	r.silent = silent
	r.sweepTemplates(ctx, lastingKey)
	r.disagree = seen
	for _, st := range states {
		if !known[st.ID] {
			r.c.Logger.WarnContext(ctx, "destroying a vm without a live record", slog.String(attrSandboxID, st.ID))
			if err := r.c.Host.DestroySandbox(ctx, st.ID); err != nil {
				r.c.Logger.ErrorContext(ctx, "destroy orphaned vm", slog.String(attrSandboxID, st.ID), slog.Any(attrError, err))
				continue
			}
			back.ended++
		}
	}
	r.report(ctx, back)
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
	// In whole seconds: a timeout recorded before create checked its range
	// may be past what a time.Duration holds, and must not wrap.
	return int64(now.Sub(last)/time.Second) >= int64(sb.TimeoutSec)
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

// unpause resumes a sandbox the record says runs but the host paused,
// and records where it runs now.
func (r *Reconciler) unpause(ctx context.Context, sb *wrenn.Sandbox) {
	log := r.c.Logger.With(slog.String(attrSandboxID, sb.ID), slog.String(attrTeamID, sb.TeamID))
	snap, ok := r.c.Host.(wrenn.Snapshotter)
	if !ok {
		r.fail(ctx, sb, true, "it is paused but recorded running")
		return
	}
	net, err := snap.ResumeSandbox(ctx, wrenn.SandboxSpec{ID: sb.ID, TeamID: sb.TeamID, Template: sb.Template,
		VCPUs: sb.VCPUs, MemoryMB: sb.MemoryMB, Network: sb.Network})
	if err != nil {
		log.WarnContext(ctx, "resume a sandbox recorded running", slog.Any(attrError, err))
		return
	}
	sb.GuestIP, sb.HostIP, sb.LastUpdated = net.GuestIP, net.HostIP, r.c.Now().UTC()
	if err := r.c.Store.UpdateSandbox(ctx, sb); err != nil {
		log.ErrorContext(ctx, "record resumed sandbox", slog.Any(attrError, err))
		return
	}
	log.InfoContext(ctx, "resumed a sandbox that was paused while recorded running")
}

// sweepTemplates removes snapshot template files the host holds that no
// record names, once that has lasted SettleGrace (a snapshot in flight
// has its files before its record): what an agent or control plane that
// died mid-snapshot, or a failed delete, left.
func (r *Reconciler) sweepTemplates(ctx context.Context, lasting func(string) bool) {
	snap, ok := r.c.Host.(wrenn.Snapshotter)
	if !ok {
		return
	}
	held, err := snap.ListSnapshots(ctx)
	if err != nil {
		if wrenn.ErrorCode(err) != wrenn.EHostAgent {
			r.c.Logger.WarnContext(ctx, "list the host's snapshot templates", slog.Any(attrError, err))
		}
		return
	}
	for _, t := range held {
		_, err := r.c.Store.GetTemplate(ctx, t.TeamID, t.Name)
		switch {
		case err == nil:
			continue
		case wrenn.ErrorCode(err) != wrenn.ENotFound:
			r.c.Logger.WarnContext(ctx, "look up a snapshot template", slog.Any(attrError, err))
			continue
		case !lasting("template " + t.TeamID + " " + t.Name):
			continue
		}
		log := r.c.Logger.With(slog.String(attrTeamID, t.TeamID), slog.String(attrTemplate, t.Name))
		if err := snap.DeleteSnapshot(ctx, t.TeamID, t.Name); err != nil {
			log.ErrorContext(ctx, "remove template files without a record", slog.Any(attrError, err))
			continue
		}
		log.WarnContext(ctx, "removed template files without a record")
	}
}

// repause pauses again a sandbox the record says is paused but runs.
func (r *Reconciler) repause(ctx context.Context, sb *wrenn.Sandbox) {
	log := r.c.Logger.With(slog.String(attrSandboxID, sb.ID), slog.String(attrTeamID, sb.TeamID))
	snap, ok := r.c.Host.(wrenn.Snapshotter)
	if !ok {
		r.fail(ctx, sb, true, "it runs but is recorded paused")
		return
	}
	if err := snap.PauseSandbox(ctx, sb.ID); err != nil {
		log.WarnContext(ctx, "pause a sandbox recorded paused", slog.Any(attrError, err))
		return
	}
	log.InfoContext(ctx, "paused a sandbox that ran while recorded paused")
}

// expire records an idle sandbox stopped and destroys it. The record
// comes first, and only if the sandbox is still idle there: an operation
// that marked it active since it was read (by any control plane) keeps it.
// Should the destroy fail, the VM is held without a live record and the
// next pass destroys it.
func (r *Reconciler) expire(ctx context.Context, sb *wrenn.Sandbox, now time.Time) {
	log := r.c.Logger.With(slog.String(attrSandboxID, sb.ID), slog.String(attrTeamID, sb.TeamID))
	// idle has checked that the timeout fits in the time since.
	idleSince := now.Add(-time.Duration(sb.TimeoutSec) * time.Second)
	if _, err := r.c.Store.StopIdleSandbox(ctx, sb.TeamID, sb.ID, idleSince, now); err != nil {
		if wrenn.ErrorCode(err) != wrenn.EConflict && wrenn.ErrorCode(err) != wrenn.ENotFound {
			log.ErrorContext(ctx, "record idle sandbox stopped", slog.Any(attrError, err))
		}
		return // active again, or someone else moved it on
	}
	if err := r.c.Host.DestroySandbox(ctx, sb.ID); err != nil {
		log.ErrorContext(ctx, "destroy idle sandbox", slog.Any(attrError, err))
		return
	}
	log.InfoContext(ctx, "idle sandbox stopped", slog.Int("timeout_sec", sb.TimeoutSec))
}
