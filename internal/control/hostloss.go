package control

import (
	"context"
	"log/slog"

	"github.com/wrennhq/wrenn"
)

// Host loss (issue 13). The heartbeat check (internal/fleet, loss.go)
// records the running sandboxes of an unreachable host missing, and error
// once they have been missing for its grace. Here: what the control plane
// does with a missing sandbox (operations that need its VM are a 502 that
// says its host is unreachable; a destroy records it stopped, for the host
// to end when it returns), and what a host's reconciler does once it can
// reach the host again: each missing sandbox the host still runs is
// running again, each it lost is error, and every VM without a live record
// (given up, or destroyed while the host was away) is ended on the host.

// errMissing is why a missing sandbox cannot take work.
func errMissing(sb *wrenn.Sandbox) error {
	return wrenn.Errorf(wrenn.EHostAgent,
		"sandbox is missing: its host %s is unreachable (it runs again if the host comes back in time, and is given up as error if not)", sb.HostID)
}

// comeback counts what one reconciler pass found of a host's sandboxes.
type comeback struct {
	running int // missing sandboxes the host still runs: running again
	lost    int // missing sandboxes the host no longer holds: error
	ended   int // VMs without a live record, ended on the host
}

// found settles a missing sandbox on a host that answers again: one the
// host holds running (or paused: a pause whose answer was lost, undone
// by the next passes as for any running sandbox) is recorded running; one
// it does not hold, or whose VM is gone, becomes error.
func (r *Reconciler) found(ctx context.Context, sb *wrenn.Sandbox, st wrenn.SandboxState, held bool, back *comeback) {
	if !held || (!st.Running && !st.Paused) {
		r.fail(ctx, sb, held, "its host came back without it")
		back.lost++
		return
	}
	log := r.c.Logger.With(slog.String(attrSandboxID, sb.ID), slog.String(attrTeamID, sb.TeamID), slog.String("host_id", sb.HostID))
	if _, err := r.c.Store.TransitionSandbox(ctx, sb.TeamID, sb.ID, []wrenn.SandboxStatus{wrenn.StatusMissing}, wrenn.StatusRunning,
		r.c.Now().UTC()); err != nil {
		if c := wrenn.ErrorCode(err); c != wrenn.EConflict && c != wrenn.ENotFound {
			log.ErrorContext(ctx, "record a missing sandbox running again", slog.Any(attrError, err))
		}
		return // destroyed or given up meanwhile; the next pass ends its VM
	}
	back.running++
	log.InfoContext(ctx, "sandbox found again on its host: running")
}

// report logs, on the first pass that reaches a host after passes that
// could not, what the reconciler found there.
func (r *Reconciler) report(ctx context.Context, back comeback) {
	if !r.away {
		return
	}
	r.away = false
	r.c.Logger.InfoContext(ctx, "the host answers again", slog.String("host_id", r.c.HostID),
		slog.Int("running_again", back.running), slog.Int("lost", back.lost), slog.Int("ended", back.ended))
}

// awayHost reports whether a destroy of sb that failed with err, reaching
// its host, is recorded all the same: sb is missing (whatever the host
// said: the control plane already counts it lost), or in error on a host
// that cannot take calls. The host ends the VM if it returns: its
// reconciler ends every VM without a live record.
func awayHost(sb *wrenn.Sandbox, err error) bool {
	return sb.Status == wrenn.StatusMissing || (sb.Status == wrenn.StatusError && wrenn.ErrorCode(err) == wrenn.EHostAgent)
}
