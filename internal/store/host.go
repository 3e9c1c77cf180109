package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wrennhq/wrenn"
)

// The registry of hosts (issue 13): hosts, their tags, and what lives on
// them. Permissions are the caller's (internal/fleet); these queries only
// keep the records consistent.

const hostColumns = `id, type, team_id, provider, availability_zone, arch, cpu_cores, memory_mb, disk_gb, address,
	status, draining, last_heartbeat_at, token_hash, token_expires_at, created_by, created_at, updated_at,
	capacity_vcpus, capacity_memory_mb`

func scanHost(row interface{ Scan(...any) error }) (*wrenn.Host, error) {
	var h wrenn.Host
	var teamID, provider, zone, arch, address sql.NullString
	var cores, memory, disk, capVCPUs, capMemory sql.NullInt64
	err := row.Scan(&h.ID, &h.Type, &teamID, &provider, &zone, &arch, &cores, &memory, &disk, &address,
		&h.Status, &h.Draining, nullTimeCol{&h.LastHeartbeatAt}, &h.TokenHash, nullTimeCol{&h.TokenExpiresAt},
		&h.CreatedBy, timeCol{&h.CreatedAt}, timeCol{&h.UpdatedAt}, &capVCPUs, &capMemory)
	if err != nil {
		return nil, err
	}
	h.TeamID, h.Provider, h.AvailabilityZone, h.Arch, h.Address = teamID.String, provider.String, zone.String, arch.String, address.String
	h.CPUCores, h.MemoryMB, h.DiskGB = intPtr(cores), intPtr(memory), intPtr(disk)
	h.Capacity = capacityOf(capVCPUs, capMemory)
	if len(h.TokenHash) == 0 {
		h.TokenHash = nil
	}
	h.Tags = []string{}
	return &h, nil
}

// capacityOf is a host's reported capacity from its two columns; nil
// unless both are set.
func capacityOf(vcpus, memoryMB sql.NullInt64) *wrenn.HostCapacity {
	if !vcpus.Valid || !memoryMB.Valid {
		return nil
	}
	return &wrenn.HostCapacity{VCPUs: int(vcpus.Int64), MemoryMB: int(memoryMB.Int64)}
}

// nullCapacity is a capacity's two columns: NULLs for none.
func nullCapacity(c *wrenn.HostCapacity) (vcpus, memoryMB any) {
	if c == nil {
		return nil, nil
	}
	return c.VCPUs, c.MemoryMB
}

// nullString stores "" as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// normHostTimes normalises h's times to UTC microseconds, as stored.
func normHostTimes(h *wrenn.Host) {
	h.CreatedAt = normTime(h.CreatedAt)
	h.UpdatedAt = normTime(h.UpdatedAt)
	h.LastHeartbeatAt = normTimePtr(h.LastHeartbeatAt)
	h.TokenExpiresAt = normTimePtr(h.TokenExpiresAt)
}

// CreateHost records h, with its registration token's hash if it has one.
// Its tags are not written (a new host has none). Times are normalised to
// UTC microseconds, as stored. A TeamID that names no team is EInvalid; an
// ID or token hash already recorded is EConflict.
func (db *DB) CreateHost(ctx context.Context, h *wrenn.Host) error {
	normHostTimes(h)
	err := db.tx(ctx, func(c conn) error {
		if h.TeamID != "" {
			// Teams are never deleted, so a team found here is there at the insert.
			var one int
			err := c.queryRow(ctx, `SELECT 1 FROM teams WHERE id = ?`, h.TeamID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return wrenn.Errorf(wrenn.EInvalid, "team_id names no team")
			}
			if err != nil {
				return fmt.Errorf("find team: %w", err)
			}
		}
		capVCPUs, capMemory := nullCapacity(h.Capacity)
		_, err := c.exec(ctx, `INSERT INTO hosts (`+hostColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			h.ID, string(h.Type), nullString(h.TeamID), nullString(h.Provider), nullString(h.AvailabilityZone), nullString(h.Arch),
			nullInt(h.CPUCores), nullInt(h.MemoryMB), nullInt(h.DiskGB), nullString(h.Address),
			string(h.Status), h.Draining, db.d.nullTime(h.LastHeartbeatAt), nullBytes(h.TokenHash), db.d.nullTime(h.TokenExpiresAt),
			h.CreatedBy, db.d.time(h.CreatedAt), db.d.time(h.UpdatedAt), capVCPUs, capMemory)
		if db.d.isUniqueViolation(err) {
			return conflict("host already exists")
		}
		return err
	})
	if err != nil {
		return wrapUnlessDomain("create host", err)
	}
	if h.Tags == nil {
		h.Tags = []string{}
	}
	return nil
}

// GetHost returns host id with its tags, or ENotFound.
func (db *DB) GetHost(ctx context.Context, id string) (*wrenn.Host, error) {
	h, err := scanHost(db.r.queryRow(ctx, `SELECT `+hostColumns+` FROM hosts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("host")
	}
	if err != nil {
		return nil, fmt.Errorf("get host: %w", err)
	}
	if h.Tags, err = db.HostTags(ctx, id); err != nil {
		return nil, err
	}
	return h, nil
}

// HostByTokenHash returns the host whose outstanding registration token
// has that SHA-256, or ENotFound. Whether the token has expired is the
// caller's to judge (TokenExpiresAt).
func (db *DB) HostByTokenHash(ctx context.Context, hash []byte) (*wrenn.Host, error) {
	if len(hash) == 0 {
		return nil, notFound("host")
	}
	h, err := scanHost(db.r.queryRow(ctx, `SELECT `+hostColumns+` FROM hosts WHERE token_hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("host")
	}
	if err != nil {
		return nil, fmt.Errorf("host by token hash: %w", err)
	}
	if h.Tags, err = db.HostTags(ctx, h.ID); err != nil {
		return nil, err
	}
	return h, nil
}

// ListHosts returns every host, oldest first, with their tags.
func (db *DB) ListHosts(ctx context.Context) ([]*wrenn.Host, error) {
	return db.listHosts(ctx, `SELECT `+hostColumns+` FROM hosts ORDER BY created_at, id`,
		`SELECT host_id, tag FROM host_tags`)
}

// ListTeamHosts returns the team's BYOC hosts, oldest first, with their
// tags.
func (db *DB) ListTeamHosts(ctx context.Context, teamID string) ([]*wrenn.Host, error) {
	return db.listHosts(ctx, `SELECT `+hostColumns+` FROM hosts WHERE team_id = ? ORDER BY created_at, id`,
		`SELECT t.host_id, t.tag FROM host_tags t JOIN hosts h ON h.id = t.host_id WHERE h.team_id = ?`, teamID)
}

func (db *DB) listHosts(ctx context.Context, hostsQuery, tagsQuery string, args ...any) ([]*wrenn.Host, error) {
	rows, err := db.r.query(ctx, hostsQuery, args...)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	defer rows.Close()
	hosts := []*wrenn.Host{}
	byID := map[string]*wrenn.Host{}
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
		hosts = append(hosts, h)
		byID[h.ID] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	tags, err := db.r.query(ctx, tagsQuery+` ORDER BY host_id, tag`, args...)
	if err != nil {
		return nil, fmt.Errorf("list host tags: %w", err)
	}
	defer tags.Close()
	for tags.Next() {
		var id, tag string
		if err := tags.Scan(&id, &tag); err != nil {
			return nil, fmt.Errorf("list host tags: %w", err)
		}
		if h := byID[id]; h != nil { // a host created between the two queries is left out
			h.Tags = append(h.Tags, tag)
		}
	}
	if err := tags.Err(); err != nil {
		return nil, fmt.Errorf("list host tags: %w", err)
	}
	return hosts, nil
}

// SetHostToken replaces a pending host's registration token with the one
// of that hash, valid until expires (an earlier token stops working), and
// returns the host. A host that is no longer pending is EConflict; an
// unknown one ENotFound.
func (db *DB) SetHostToken(ctx context.Context, id string, hash []byte, expires, at time.Time) (*wrenn.Host, error) {
	h, err := scanHost(db.w.queryRow(ctx, `UPDATE hosts SET token_hash = ?, token_expires_at = ?, updated_at = ?
		WHERE id = ? AND status = ? RETURNING `+hostColumns,
		nullBytes(hash), db.d.time(expires), db.d.time(at), id, string(wrenn.HostPending)))
	if errors.Is(err, sql.ErrNoRows) {
		cur, err := db.GetHost(ctx, id)
		if err != nil {
			return nil, err
		}
		return nil, conflict(fmt.Sprintf("host is %s: only a pending host is given a registration token", cur.Status))
	}
	if db.d.isUniqueViolation(err) {
		return nil, conflict("registration token already in use")
	}
	if err != nil {
		return nil, fmt.Errorf("set host token: %w", err)
	}
	if h.Tags, err = db.HostTags(ctx, id); err != nil {
		return nil, err
	}
	return h, nil
}

// SetHostDraining sets or clears the host's drain and returns it.
func (db *DB) SetHostDraining(ctx context.Context, id string, draining bool, at time.Time) (*wrenn.Host, error) {
	h, err := scanHost(db.w.queryRow(ctx, `UPDATE hosts SET draining = ?, updated_at = ? WHERE id = ? RETURNING `+hostColumns,
		draining, db.d.time(at), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("host")
	}
	if err != nil {
		return nil, fmt.Errorf("set host draining: %w", err)
	}
	if h.Tags, err = db.HostTags(ctx, id); err != nil {
		return nil, err
	}
	return h, nil
}

// HostTags returns the host's tags, sorted; none for an unknown host.
func (db *DB) HostTags(ctx context.Context, id string) ([]string, error) {
	tags, err := db.r.queryStrings(ctx, `SELECT tag FROM host_tags WHERE host_id = ? ORDER BY tag`, id)
	if err != nil {
		return nil, fmt.Errorf("host tags: %w", err)
	}
	return tags, nil
}

// AddHostTag tags the host; a tag it has already is no change. A host may
// have at most max tags (EInvalid past them); an unknown host is
// ENotFound.
func (db *DB) AddHostTag(ctx context.Context, id, tag string, max int, at time.Time) error {
	err := db.tx(ctx, func(c conn) error {
		if err := db.lockHost(ctx, c, id); err != nil {
			return err
		}
		var n, has int
		if err := c.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN tag = ? THEN 1 ELSE 0 END), 0) FROM host_tags WHERE host_id = ?`,
			tag, id).Scan(&n, &has); err != nil {
			return fmt.Errorf("count host tags: %w", err)
		}
		if has > 0 {
			return nil
		}
		if n >= max {
			return wrenn.Errorf(wrenn.EInvalid, "a host has at most %d tags", max)
		}
		if _, err := c.exec(ctx, `INSERT INTO host_tags (host_id, tag) VALUES (?, ?)`, id, tag); err != nil {
			return fmt.Errorf("insert host tag: %w", err)
		}
		if _, err := c.exec(ctx, `UPDATE hosts SET updated_at = ? WHERE id = ?`, db.d.time(at), id); err != nil {
			return fmt.Errorf("touch host: %w", err)
		}
		return nil
	})
	return wrapUnlessDomain("add host tag", err)
}

// RemoveHostTag removes the tag from the host; a tag it does not have is
// no change. An unknown host is ENotFound.
func (db *DB) RemoveHostTag(ctx context.Context, id, tag string, at time.Time) error {
	err := db.tx(ctx, func(c conn) error {
		if err := db.lockHost(ctx, c, id); err != nil {
			return err
		}
		res, err := c.exec(ctx, `DELETE FROM host_tags WHERE host_id = ? AND tag = ?`, id, tag)
		if err != nil {
			return fmt.Errorf("delete host tag: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if _, err := c.exec(ctx, `UPDATE hosts SET updated_at = ? WHERE id = ?`, db.d.time(at), id); err != nil {
			return fmt.Errorf("touch host: %w", err)
		}
		return nil
	})
	return wrapUnlessDomain("remove host tag", err)
}

// HostSandboxIDs returns the IDs of the sandboxes that live on the host —
// every one recorded there that is not stopped, paused ones included (their
// files are on it) — oldest first.
func (db *DB) HostSandboxIDs(ctx context.Context, id string) ([]string, error) {
	ids, err := hostSandboxIDs(ctx, db.r, id)
	if err != nil {
		return nil, fmt.Errorf("host sandboxes: %w", err)
	}
	return ids, nil
}

func hostSandboxIDs(ctx context.Context, c conn, id string) ([]string, error) {
	return c.queryStrings(ctx, `SELECT id FROM sandboxes WHERE host_id = ? AND status <> ? ORDER BY created_at, id`,
		id, string(wrenn.StatusStopped))
}

// DeleteHost deletes the host and its tags. While sandboxes live on it
// (HostSandboxIDs) it refuses with a *wrenn.HostBusyError naming them,
// unless force: then those sandboxes are recorded stopped at at, in the
// same transaction, and their IDs returned. An unknown host is ENotFound.
func (db *DB) DeleteHost(ctx context.Context, id string, force bool, at time.Time) ([]string, error) {
	var ended []string
	err := db.tx(ctx, func(c conn) error {
		if err := db.lockHost(ctx, c, id); err != nil {
			return err
		}
		ids, err := hostSandboxIDs(ctx, c, id)
		if err != nil {
			return fmt.Errorf("host sandboxes: %w", err)
		}
		if len(ids) > 0 && !force {
			return &wrenn.HostBusyError{SandboxIDs: ids}
		}
		if len(ids) > 0 {
			if _, err := c.exec(ctx, `UPDATE sandboxes SET status = ?, paused_by = '', last_updated = ? WHERE host_id = ? AND status <> ?`,
				string(wrenn.StatusStopped), db.d.time(at), id, string(wrenn.StatusStopped)); err != nil {
				return fmt.Errorf("stop host sandboxes: %w", err)
			}
		}
		if _, err := c.exec(ctx, `DELETE FROM hosts WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete host: %w", err)
		}
		ended = ids
		return nil
	})
	if err != nil {
		return nil, wrapUnlessDomain("delete host", err) // a *wrenn.HostBusyError is a domain error
	}
	return ended, nil
}

// lockHost checks, inside c's transaction, that the host exists and, on
// PostgreSQL, locks its row until the transaction ends, so that changes to
// one host (and later, placements on it) take turns. SQLite has one
// writer, so its transactions take turns already.
func (db *DB) lockHost(ctx context.Context, c conn, id string) error {
	q := `SELECT id FROM hosts WHERE id = ?`
	if db.d.engine == EnginePostgres {
		q += ` FOR UPDATE`
	}
	var got string
	err := c.queryRow(ctx, q, id).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound("host")
	}
	if err != nil {
		return fmt.Errorf("lock host: %w", err)
	}
	return nil
}
