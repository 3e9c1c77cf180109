package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Leases (issue 13, control planes that can fail): a lease names one
// background job and the replica that runs it (internal/lease). Expiry is
// by the database's clock, in milliseconds since the Unix epoch, so that
// the replicas' clocks need not agree.

// nowMS is the database's clock in milliseconds since the Unix epoch.
func (d dialect) nowMS() string {
	if d.engine == EnginePostgres {
		return `(extract(epoch from clock_timestamp()) * 1000)::bigint`
	}
	return `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
}

// AcquireLease takes the lease name for holder until ttl from now, or
// renews it if holder has it; it reports whether holder has it now. On
// PostgreSQL a lease another holder has is taken only once it has
// expired. On SQLite, one process's database, it is always taken: a
// holder there is only ever the process itself (or a run of it that has
// died).
func (db *DB) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := db.d.nowMS()
	q := `INSERT INTO leases (name, holder, expires_ms) VALUES (?, ?, ` + now + ` + ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms`
	if db.d.engine == EnginePostgres {
		q += ` WHERE leases.holder = excluded.holder OR leases.expires_ms <= ` + now
	}
	q += ` RETURNING holder`
	var got string
	err := db.w.queryRow(ctx, q, name, holder, ttl.Milliseconds()).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return got == holder, nil
}

// ReleaseLease gives up the lease name if holder has it, so another
// holder may take it at once.
func (db *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := db.w.exec(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// LeaseHolders returns the holder of each lease not expired, by name.
func (db *DB) LeaseHolders(ctx context.Context) (map[string]string, error) {
	rows, err := db.r.query(ctx, `SELECT name, holder FROM leases WHERE expires_ms > `+db.d.nowMS())
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var n, h string
		if err := rows.Scan(&n, &h); err != nil {
			return nil, fmt.Errorf("list leases: %w", err)
		}
		m[n] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	return m, nil
}
