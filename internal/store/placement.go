package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/wrennhq/wrenn"
)

// PlacementHosts returns the hosts placement chooses among (issue 13):
// those online and not draining, in no order, with what placement reads
// of them (ID, type, team, address, cores, memory, the capacity its
// agent reported and, if withTags, tags). It reads no more than that: no
// sort, no timestamps, no tags unless asked for, no host placement would
// pass over, and no loads: placement reads those only for the hosts it
// draws (HostLoadsOf).
func (db *DB) PlacementHosts(ctx context.Context, withTags bool) ([]*wrenn.Host, error) {
	rows, err := db.r.query(ctx, `SELECT id, type, team_id, address, cpu_cores, memory_mb, capacity_vcpus, capacity_memory_mb FROM hosts
		WHERE status = ? AND draining = ? AND address IS NOT NULL AND cpu_cores IS NOT NULL AND memory_mb IS NOT NULL`,
		string(wrenn.HostOnline), false)
	if err != nil {
		return nil, fmt.Errorf("placement hosts: %w", err)
	}
	defer rows.Close()
	hosts := []*wrenn.Host{}
	byID := map[string]*wrenn.Host{}
	for rows.Next() {
		h := &wrenn.Host{Status: wrenn.HostOnline}
		var teamID sql.NullString
		var typ string // a *string scans without reflection, a *wrenn.HostType not
		var cores, mem, capVCPUs, capMemory fastInt
		if err := rows.Scan(&h.ID, &typ, &teamID, &h.Address, &cores, &mem, &capVCPUs, &capMemory); err != nil {
			return nil, fmt.Errorf("placement hosts: %w", err)
		}
		h.Type, h.TeamID, h.CPUCores, h.MemoryMB = wrenn.HostType(typ), teamID.String, &cores.n, &mem.n
		if capVCPUs.valid && capMemory.valid {
			h.Capacity = &wrenn.HostCapacity{VCPUs: capVCPUs.n, MemoryMB: capMemory.n}
		}
		hosts = append(hosts, h)
		byID[h.ID] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("placement hosts: %w", err)
	}
	if withTags {
		if err := db.placementTags(ctx, byID); err != nil {
			return nil, err
		}
	}
	return hosts, nil
}

// fastInt scans an integer column, NULL or not, as sql.NullInt64 does but
// without database/sql's reflection, which PlacementHosts would pay four
// times a host.
type fastInt struct {
	n     int
	valid bool
}

func (v *fastInt) Scan(src any) error {
	if n, ok := src.(int64); ok {
		*v = fastInt{int(n), true}
		return nil
	}
	var n sql.NullInt64
	if err := n.Scan(src); err != nil {
		return err
	}
	*v = fastInt{int(n.Int64), n.Valid}
	return nil
}

func (db *DB) placementTags(ctx context.Context, byID map[string]*wrenn.Host) error {
	tags, err := db.r.query(ctx, `SELECT host_id, tag FROM host_tags`)
	if err != nil {
		return fmt.Errorf("placement host tags: %w", err)
	}
	defer tags.Close()
	for tags.Next() {
		var id, tag string
		if err := tags.Scan(&id, &tag); err != nil {
			return fmt.Errorf("placement host tags: %w", err)
		}
		if h := byID[id]; h != nil {
			h.Tags = append(h.Tags, tag)
		}
	}
	if err := tags.Err(); err != nil {
		return fmt.Errorf("placement host tags: %w", err)
	}
	return nil
}

// HostLoads returns, by host ID, what the sandboxes recorded on each host
// hold: those pending, running or missing (a lost host's, counted while
// it may come back with them). A host with none is absent.
func (db *DB) HostLoads(ctx context.Context) (map[string]wrenn.HostLoad, error) {
	return db.hostLoads(ctx, "")
}

// HostLoadsOf is HostLoads for the hosts of ids alone, for a few hosts
// (placement's sample): a long list of IDs can cost more than HostLoads,
// as PostgreSQL may check every running sandbox against the list. No ids
// reads nothing.
func (db *DB) HostLoadsOf(ctx context.Context, ids []string) (map[string]wrenn.HostLoad, error) {
	if len(ids) == 0 {
		return map[string]wrenn.HostLoad{}, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return db.hostLoads(ctx, `host_id IN (`+placeholders(len(ids))+`) AND `, args...)
}

// hostLoads sums the pending, running and missing sandboxes by host, of the hosts
// the condition where (ending in AND, or "") with its args selects.
func (db *DB) hostLoads(ctx context.Context, where string, args ...any) (map[string]wrenn.HostLoad, error) {
	args = append(args, string(wrenn.StatusPending), string(wrenn.StatusRunning), string(wrenn.StatusMissing))
	rows, err := db.r.query(ctx, `SELECT host_id, COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0)
		FROM sandboxes WHERE `+where+`status IN (?, ?, ?) GROUP BY host_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("host loads: %w", err)
	}
	defer rows.Close()
	loads := map[string]wrenn.HostLoad{}
	for rows.Next() {
		var id string
		var l wrenn.HostLoad
		if err := rows.Scan(&id, &l.Sandboxes, &l.VCPUs, &l.MemoryMB); err != nil {
			return nil, fmt.Errorf("host loads: %w", err)
		}
		loads[id] = l
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("host loads: %w", err)
	}
	return loads, nil
}
