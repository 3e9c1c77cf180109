package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wrennhq/wrenn"
)

// Team quotas. The operator's defaults are configuration, passed in; a
// team's own overrides are rows of team_quotas. The checks that admit a
// sandbox to running (create, resume) count the team's sandboxes and
// write in one transaction that first locks the team's row, so that two
// control planes admitting two sandboxes of one team at once take turns:
// neither can slip past the last slot. (On SQLite all writes already
// take turns on the one write connection.)

// runningStatuses are the statuses that hold CPU and memory on a host. A
// missing sandbox (its host lost, issue 13) still may: it holds them until
// the control plane gives it up (error).
var runningStatuses = []wrenn.SandboxStatus{wrenn.StatusPending, wrenn.StatusRunning, wrenn.StatusMissing}

// TeamQuota returns the team's own quota; its fields are nil where the
// team takes the operator's default. A team that does not exist is
// ENotFound.
func (db *DB) TeamQuota(ctx context.Context, teamID string) (wrenn.QuotaOverride, error) {
	var o wrenn.QuotaOverride
	err := db.tx(ctx, func(c conn) error {
		if err := db.lockTeam(ctx, c, teamID, false); err != nil {
			return err
		}
		var err error
		o, err = db.teamQuota(ctx, c, teamID)
		return err
	})
	return o, wrapUnlessDomain("team quota", err)
}

// SetTeamQuota replaces the team's own quota with o at at; an o with every
// field nil returns the team to the operator's defaults. A team that does
// not exist is ENotFound.
func (db *DB) SetTeamQuota(ctx context.Context, teamID string, o wrenn.QuotaOverride, at time.Time) error {
	err := db.tx(ctx, func(c conn) error {
		if err := db.lockTeam(ctx, c, teamID, true); err != nil {
			return err
		}
		if o == (wrenn.QuotaOverride{}) {
			_, err := c.exec(ctx, `DELETE FROM team_quotas WHERE team_id = ?`, teamID)
			return err
		}
		_, err := c.exec(ctx, `INSERT INTO team_quotas (team_id, max_sandboxes, max_vcpus, max_memory_mb, max_snapshot_mb, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (team_id) DO UPDATE SET
				max_sandboxes = excluded.max_sandboxes, max_vcpus = excluded.max_vcpus,
				max_memory_mb = excluded.max_memory_mb, max_snapshot_mb = excluded.max_snapshot_mb,
				updated_at = excluded.updated_at`,
			teamID, nullInt(o.Sandboxes), nullInt(o.VCPUs), nullInt(o.MemoryMB), nullInt64(o.SnapshotMB), db.d.time(at))
		return err
	})
	return wrapUnlessDomain("set team quota", err)
}

// TeamUsage returns what the team holds now, counted as wrenn.Quota says.
func (db *DB) TeamUsage(ctx context.Context, teamID string) (wrenn.Usage, error) {
	u, err := db.teamUsage(ctx, db.r, teamID)
	if err != nil {
		return u, fmt.Errorf("team usage: %w", err)
	}
	return u, nil
}

// CreateSandboxWithin records sb, pending or running, as CreateSandbox
// does, but only if the team's quota (its own over def) admits one more
// running sandbox of sb's sizes; otherwise it writes nothing and returns
// the EQuotaExceeded error that names the limit.
func (db *DB) CreateSandboxWithin(ctx context.Context, sb *wrenn.Sandbox, def wrenn.Quota) error {
	normSandboxTimes(sb)
	err := db.tx(ctx, func(c conn) error {
		if err := db.admit(ctx, c, sb.TeamID, def, sb.VCPUs, sb.MemoryMB); err != nil {
			return err
		}
		return db.insertSandbox(ctx, c, sb)
	})
	return wrapUnlessDomain("create sandbox", err)
}

// ResumeSandboxWithin moves the team's paused sandbox id to running at at,
// but only if the team's quota (its own over def) admits it; it returns
// the updated sandbox, ENotFound, EConflict naming the status it is in if
// not paused, or the EQuotaExceeded error that names the limit.
func (db *DB) ResumeSandboxWithin(ctx context.Context, teamID, id string, def wrenn.Quota, at time.Time) (*wrenn.Sandbox, error) {
	var out *wrenn.Sandbox
	err := db.tx(ctx, func(c conn) error {
		sb, err := scanSandbox(c.queryRow(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE team_id = ? AND id = ?`, teamID, id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("sandbox")
		}
		if err != nil {
			return err
		}
		if err := db.admit(ctx, c, teamID, def, sb.VCPUs, sb.MemoryMB); err != nil {
			return err
		}
		// Read again under the team's lock: another resume may have won.
		out, err = scanSandbox(c.queryRow(ctx, `UPDATE sandboxes SET status = ?, paused_by = '', last_updated = ?
			WHERE team_id = ? AND id = ? AND status = ?
			RETURNING `+sandboxColumns,
			string(wrenn.StatusRunning), db.d.time(at), teamID, id, string(wrenn.StatusPaused)))
		if errors.Is(err, sql.ErrNoRows) {
			var cur wrenn.SandboxStatus
			if err := c.queryRow(ctx, `SELECT status FROM sandboxes WHERE team_id = ? AND id = ?`, teamID, id).Scan(&cur); err != nil {
				return err
			}
			return conflict("sandbox is " + string(cur))
		}
		return err
	})
	return out, wrapUnlessDomain("resume sandbox", err)
}

// admit locks the team and checks that one more running sandbox of vcpus
// and memoryMB fits its quota. Call inside a transaction.
func (db *DB) admit(ctx context.Context, c conn, teamID string, def wrenn.Quota, vcpus, memoryMB int) error {
	if err := db.lockTeam(ctx, c, teamID, true); err != nil {
		return err
	}
	o, err := db.teamQuota(ctx, c, teamID)
	if err != nil {
		return err
	}
	u, err := db.teamUsage(ctx, c, teamID)
	if err != nil {
		return err
	}
	return o.Apply(def).AdmitSandbox(u, vcpus, memoryMB)
}

// lockTeam checks that the team exists and, with forUpdate on PostgreSQL,
// locks its row until the transaction ends. Admissions of one team's
// sandboxes take turns on that lock.
func (db *DB) lockTeam(ctx context.Context, c conn, teamID string, forUpdate bool) error {
	q := `SELECT id FROM teams WHERE id = ?`
	if forUpdate && db.d.engine == EnginePostgres {
		q += ` FOR UPDATE`
	}
	var id string
	err := c.queryRow(ctx, q, teamID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound("team")
	}
	if err != nil {
		return fmt.Errorf("lock team: %w", err)
	}
	return nil
}

func (db *DB) teamQuota(ctx context.Context, c conn, teamID string) (wrenn.QuotaOverride, error) {
	var sandboxes, vcpus, memory, snapshot sql.NullInt64
	err := c.queryRow(ctx, `SELECT max_sandboxes, max_vcpus, max_memory_mb, max_snapshot_mb FROM team_quotas WHERE team_id = ?`, teamID).
		Scan(&sandboxes, &vcpus, &memory, &snapshot)
	if errors.Is(err, sql.ErrNoRows) {
		return wrenn.QuotaOverride{}, nil
	}
	if err != nil {
		return wrenn.QuotaOverride{}, fmt.Errorf("read team quota: %w", err)
	}
	o := wrenn.QuotaOverride{Sandboxes: intPtr(sandboxes), VCPUs: intPtr(vcpus), MemoryMB: intPtr(memory)}
	if snapshot.Valid {
		o.SnapshotMB = &snapshot.Int64
	}
	return o, nil
}

// teamUsage counts what the team holds, as wrenn.Quota says: pending and
// running sandboxes' sizes; paused sandboxes' memory and snapshot
// templates' recorded sizes as snapshot storage.
func (db *DB) teamUsage(ctx context.Context, c conn, teamID string) (wrenn.Usage, error) {
	var u wrenn.Usage
	var pausedMB int64
	run := placeholders(len(runningStatuses))
	args := append(statusArgs(runningStatuses), statusArgs(runningStatuses)...)
	args = append(args, statusArgs(runningStatuses)...)
	args = append(args, string(wrenn.StatusPaused), teamID)
	err := c.queryRow(ctx, `SELECT
			CAST(COALESCE(SUM(CASE WHEN status IN (`+run+`) THEN 1 ELSE 0 END), 0) AS BIGINT),
			CAST(COALESCE(SUM(CASE WHEN status IN (`+run+`) THEN vcpus ELSE 0 END), 0) AS BIGINT),
			CAST(COALESCE(SUM(CASE WHEN status IN (`+run+`) THEN memory_mb ELSE 0 END), 0) AS BIGINT),
			CAST(COALESCE(SUM(CASE WHEN status = ? THEN memory_mb ELSE 0 END), 0) AS BIGINT)
		FROM sandboxes WHERE team_id = ?`, args...).Scan(&u.Sandboxes, &u.VCPUs, &u.MemoryMB, &pausedMB)
	if err != nil {
		return u, fmt.Errorf("count sandboxes: %w", err)
	}
	var templates int64
	err = c.queryRow(ctx, `SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM templates WHERE team_id = ? AND type = ?`,
		teamID, string(wrenn.TemplateSnapshot)).Scan(&templates)
	if err != nil {
		return u, fmt.Errorf("sum snapshot sizes: %w", err)
	}
	u.SnapshotBytes = templates + pausedMB*wrenn.MiB
	return u, nil
}

func nullInt64(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}
