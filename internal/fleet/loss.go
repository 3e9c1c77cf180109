package fleet

import (
	"context"
	"log/slog"
	"time"
)

// Host loss (issue 13). A host that stops heartbeating is unreachable
// (CheckHeartbeats); in the same pass its running sandboxes become
// missing: the control plane cannot tell whether they still run. Paused
// ones stay paused (their snapshots are on disk, not in the lost VMs), and
// pending ones are left to the create in flight, whose call to the host
// fails and removes them; one pending past the grace (its control plane
// died too) is given up with the missing ones.
//
// If the host heartbeats again within MissingGrace, its reconciler
// (internal/control) finds each missing sandbox its agent still runs and
// records it running again; one the agent no longer holds becomes error.
// Past the grace the control plane gives missing sandboxes up: they become
// error, which frees their share of the team's quota, and when their host
// does come back its reconciler ends their VMs, as it ends every VM
// without a live record.
//
// Every move is a conditional update in the store, so that control planes
// sharing one may all run these passes, at once or one after another.

// DefaultMissingGrace is how long a lost host's sandboxes stay missing
// before the control plane gives them up.
const DefaultMissingGrace = 5 * time.Minute

// MissingGrace is how long a lost host's sandboxes stay missing.
func (l *Link) MissingGrace() time.Duration { return l.grace }

// checkLoss marks missing the running sandboxes of unreachable hosts, and
// error those missing for longer than the grace, at now.
func (l *Link) checkLoss(ctx context.Context, now time.Time) error {
	missing, err := l.st.MarkSandboxesMissing(ctx, now)
	if err != nil {
		return err
	}
	for _, sb := range missing {
		l.log.WarnContext(ctx, "sandbox missing: its host is unreachable", slog.String("sandbox_id", sb.ID),
			slog.String(attrTeamID, sb.TeamID), slog.String(attrHostID, sb.HostID), slog.Duration("grace", l.grace))
	}
	failed, err := l.st.FailMissingSandboxes(ctx, now.Add(-l.grace), now)
	if err != nil {
		return err
	}
	for _, sb := range failed {
		l.log.WarnContext(ctx, "sandbox given up: its host stayed unreachable past the grace", slog.String("sandbox_id", sb.ID),
			slog.String(attrTeamID, sb.TeamID), slog.String(attrHostID, sb.HostID), slog.Duration("grace", l.grace))
	}
	return nil
}
