package store

import (
	"context"
	"fmt"
	"time"

	"github.com/wrennhq/wrenn"
)

// Host loss (issue 13): the sandboxes of a host that stopped heartbeating.
// Each move is one conditional UPDATE, so that any number of control
// planes may make it at once, or again: a sandbox moves once, and the one
// that moved it gets it back.

// MarkSandboxesMissing moves to missing, at at, every running sandbox
// recorded on a host that is unreachable, and returns them. It catches
// too a sandbox recorded running on such a host after the host was marked
// (a create or resume that finished just then).
func (db *DB) MarkSandboxesMissing(ctx context.Context, at time.Time) ([]*wrenn.Sandbox, error) {
	rows, err := db.w.query(ctx, `UPDATE sandboxes SET status = ?, last_updated = ?
		WHERE status = ? AND host_id IN (SELECT id FROM hosts WHERE status = ?)
		RETURNING `+sandboxColumns,
		string(wrenn.StatusMissing), db.d.time(at), string(wrenn.StatusRunning), string(wrenn.HostUnreachable))
	if err != nil {
		return nil, fmt.Errorf("mark sandboxes missing: %w", err)
	}
	sbs, err := scanSandboxes(rows)
	if err != nil {
		return nil, fmt.Errorf("mark sandboxes missing: %w", err)
	}
	return sbs, nil
}

// FailMissingSandboxes moves to error, at at, every sandbox missing since
// before before (its last_updated, written when it went missing), and
// every sandbox pending since then on an unreachable host (a create whose
// control plane died with it: its host cannot end it), and returns them:
// the control plane gives them up.
func (db *DB) FailMissingSandboxes(ctx context.Context, before, at time.Time) ([]*wrenn.Sandbox, error) {
	rows, err := db.w.query(ctx, `UPDATE sandboxes SET status = ?, last_updated = ?
		WHERE last_updated < ? AND (status = ?
			OR (status = ? AND host_id IN (SELECT id FROM hosts WHERE status = ?)))
		RETURNING `+sandboxColumns,
		string(wrenn.StatusError), db.d.time(at), db.d.time(before), string(wrenn.StatusMissing),
		string(wrenn.StatusPending), string(wrenn.HostUnreachable))
	if err != nil {
		return nil, fmt.Errorf("fail missing sandboxes: %w", err)
	}
	sbs, err := scanSandboxes(rows)
	if err != nil {
		return nil, fmt.Errorf("fail missing sandboxes: %w", err)
	}
	return sbs, nil
}
