package store

import (
	"context"
	"fmt"
	"time"

	"github.com/wrennhq/wrenn"
)

// Team samples and daily usage (issue 11). RecordTeamSamples is called by
// every control plane once a step; the primary key of team_samples makes
// each (team, step) count once, and only the call that inserted a sample
// adds its share to team_usage_daily, in the same transaction.

// RecordTeamSamples records, at the step starting at at and lasting step,
// what each team with running or pending sandboxes reserves, and adds
// step's worth of it to the team's usage of at's UTC day. A step some
// other control plane recorded already is left as it is. It returns how
// many teams it recorded.
func (db *DB) RecordTeamSamples(ctx context.Context, at time.Time, step time.Duration) (int, error) {
	at = normTime(at)
	day := at.Format(time.DateOnly)
	minutes := step.Minutes()
	n := 0
	err := db.tx(ctx, func(c conn) error {
		n = 0
		rows, err := c.query(ctx, `SELECT team_id, CAST(COUNT(*) AS BIGINT), CAST(SUM(vcpus) AS BIGINT), CAST(SUM(memory_mb) AS BIGINT)
			FROM sandboxes WHERE status IN (`+placeholders(len(runningStatuses))+`) GROUP BY team_id`, statusArgs(runningStatuses)...)
		if err != nil {
			return fmt.Errorf("count running sandboxes: %w", err)
		}
		var samples []struct {
			team string
			s    wrenn.TeamSample
		}
		for rows.Next() {
			var team string
			var s wrenn.TeamSample
			if err := rows.Scan(&team, &s.Running, &s.VCPUs, &s.MemoryMB); err != nil {
				rows.Close()
				return err
			}
			samples = append(samples, struct {
				team string
				s    wrenn.TeamSample
			}{team, s})
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, ts := range samples {
			res, err := c.exec(ctx, `INSERT INTO team_samples (team_id, sampled_at, running, vcpus, memory_mb)
				VALUES (?, ?, ?, ?, ?) ON CONFLICT (team_id, sampled_at) DO NOTHING`,
				ts.team, db.d.time(at), ts.s.Running, ts.s.VCPUs, ts.s.MemoryMB)
			if err != nil {
				return fmt.Errorf("insert sample: %w", err)
			}
			if k, err := res.RowsAffected(); err != nil || k == 0 {
				continue // recorded already
			}
			n++
			_, err = c.exec(ctx, `INSERT INTO team_usage_daily (team_id, day, cpu_minutes, ram_mb_minutes) VALUES (?, ?, ?, ?)
				ON CONFLICT (team_id, day) DO UPDATE SET
					cpu_minutes = team_usage_daily.cpu_minutes + excluded.cpu_minutes,
					ram_mb_minutes = team_usage_daily.ram_mb_minutes + excluded.ram_mb_minutes`,
				ts.team, day, float64(ts.s.VCPUs)*minutes, float64(ts.s.MemoryMB)*minutes)
			if err != nil {
				return fmt.Errorf("add usage: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record team samples: %w", err)
	}
	return n, nil
}

// TeamSamples returns the team's samples at or after from and before to,
// oldest first.
func (db *DB) TeamSamples(ctx context.Context, teamID string, from, to time.Time) ([]wrenn.TeamSample, error) {
	rows, err := db.r.query(ctx, `SELECT sampled_at, running, vcpus, memory_mb FROM team_samples
		WHERE team_id = ? AND sampled_at >= ? AND sampled_at < ? ORDER BY sampled_at`,
		teamID, db.d.time(from), db.d.time(to))
	if err != nil {
		return nil, fmt.Errorf("team samples: %w", err)
	}
	defer rows.Close()
	var out []wrenn.TeamSample
	for rows.Next() {
		var s wrenn.TeamSample
		if err := rows.Scan(timeCol{&s.At}, &s.Running, &s.VCPUs, &s.MemoryMB); err != nil {
			return nil, fmt.Errorf("team samples: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("team samples: %w", err)
	}
	return out, nil
}

// TeamPeaks returns the largest of each of the team's sample values at or
// after since (At unset); zeros if it has none.
func (db *DB) TeamPeaks(ctx context.Context, teamID string, since time.Time) (wrenn.TeamSample, error) {
	var s wrenn.TeamSample
	err := db.r.queryRow(ctx, `SELECT CAST(COALESCE(MAX(running), 0) AS BIGINT), CAST(COALESCE(MAX(vcpus), 0) AS BIGINT),
			CAST(COALESCE(MAX(memory_mb), 0) AS BIGINT)
		FROM team_samples WHERE team_id = ? AND sampled_at >= ?`, teamID, db.d.time(since)).Scan(&s.Running, &s.VCPUs, &s.MemoryMB)
	if err != nil {
		return s, fmt.Errorf("team peaks: %w", err)
	}
	return s, nil
}

// TeamDailyUsage returns the team's usage of the UTC days from to to
// (YYYY-MM-DD, both included), oldest first; days without any are left
// out.
func (db *DB) TeamDailyUsage(ctx context.Context, teamID, from, to string) ([]wrenn.DailyUsage, error) {
	rows, err := db.r.query(ctx, `SELECT day, cpu_minutes, ram_mb_minutes FROM team_usage_daily
		WHERE team_id = ? AND day >= ? AND day <= ? ORDER BY day`, teamID, from, to)
	if err != nil {
		return nil, fmt.Errorf("team usage: %w", err)
	}
	defer rows.Close()
	var out []wrenn.DailyUsage
	for rows.Next() {
		var u wrenn.DailyUsage
		if err := rows.Scan(&u.Day, &u.CPUMinutes, &u.RAMMBMinutes); err != nil {
			return nil, fmt.Errorf("team usage: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("team usage: %w", err)
	}
	return out, nil
}

// PruneTeamSamples removes the samples taken before before. Daily usage
// stays.
func (db *DB) PruneTeamSamples(ctx context.Context, before time.Time) error {
	if _, err := db.w.exec(ctx, `DELETE FROM team_samples WHERE sampled_at < ?`, db.d.time(before)); err != nil {
		return fmt.Errorf("prune team samples: %w", err)
	}
	return nil
}
