package store

import (
	"context"
	"fmt"
	"time"

	"github.com/wrennhq/wrenn"
)

// CountRows returns how many rows table has, so tests can check that a
// failed write left nothing behind.
func (db *DB) CountRows(ctx context.Context, table string) (int, error) {
	var n int
	if err := db.r.queryRow(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	return n, nil
}

// AddTeam records team t with userID as a member since at, so tests can
// give a user several teams.
func (db *DB) AddTeam(ctx context.Context, t *wrenn.Team, userID, role string, at time.Time) error {
	return db.tx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)`,
			t.ID, t.Name, db.d.time(t.CreatedAt)); err != nil {
			return fmt.Errorf("insert team: %w", err)
		}
		if _, err := c.exec(ctx, `INSERT INTO memberships (user_id, team_id, role, created_at) VALUES (?, ?, ?, ?)`,
			userID, t.ID, role, db.d.time(at)); err != nil {
			return fmt.Errorf("insert membership: %w", err)
		}
		return nil
	})
}

// SQLitePragma returns the value of PRAGMA name on a write connection and
// on a read connection, so tests can check the DSN took effect.
func (db *DB) SQLitePragma(ctx context.Context, name string) (write, read string, err error) {
	if err := db.w.queryRow(ctx, `PRAGMA `+name).Scan(&write); err != nil {
		return "", "", fmt.Errorf("pragma %s: %w", name, err)
	}
	if err := db.r.queryRow(ctx, `PRAGMA `+name).Scan(&read); err != nil {
		return "", "", fmt.Errorf("pragma %s: %w", name, err)
	}
	return write, read, nil
}

// MigrateTo moves the schema down or up to version, so tests can check
// what a migration does to data recorded before it.
func (db *DB) MigrateTo(ctx context.Context, version int64) error {
	p, err := migrator(db.w.pool, db.d)
	if err != nil {
		return err
	}
	cur, err := p.GetDBVersion(ctx)
	if err != nil {
		return err
	}
	if version < cur {
		_, err = p.DownTo(ctx, version)
	} else {
		_, err = p.UpTo(ctx, version)
	}
	return err
}

// ExecSQL runs a statement (in SQLite's spelling, ? placeholders) on the
// write pool, for writing rows as an older schema had them.
func (db *DB) ExecSQL(ctx context.Context, q string, args ...any) error {
	_, err := db.w.exec(ctx, q, args...)
	return err
}
