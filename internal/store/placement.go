package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/wrennhq/wrenn"
)

// PlacementHosts returns what placement decides from (issue 13): the
// hosts that are online and not draining, in no order, with what
// placement reads of them (ID, type, team, address, cores, memory and, if
// withTags, tags), and by host ID what the sandboxes recorded on each
// host hold — those pending or running, which have a VM (a host with none
// is absent). It reads no more than that: no sort, no timestamps, no tags
// unless asked for, no host placement would pass over.
func (db *DB) PlacementHosts(ctx context.Context, withTags bool) ([]*wrenn.Host, map[string]wrenn.HostLoad, error) {
	rows, err := db.r.query(ctx, `SELECT id, type, team_id, address, cpu_cores, memory_mb FROM hosts
		WHERE status = ? AND draining = ? AND address IS NOT NULL AND cpu_cores IS NOT NULL AND memory_mb IS NOT NULL`,
		string(wrenn.HostOnline), false)
	if err != nil {
		return nil, nil, fmt.Errorf("placement hosts: %w", err)
	}
	defer rows.Close()
	hosts := []*wrenn.Host{}
	byID := map[string]*wrenn.Host{}
	for rows.Next() {
		h := &wrenn.Host{Status: wrenn.HostOnline}
		var teamID sql.NullString
		var cores, mem int
		if err := rows.Scan(&h.ID, &h.Type, &teamID, &h.Address, &cores, &mem); err != nil {
			return nil, nil, fmt.Errorf("placement hosts: %w", err)
		}
		h.TeamID, h.CPUCores, h.MemoryMB = teamID.String, &cores, &mem
		hosts = append(hosts, h)
		byID[h.ID] = h
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("placement hosts: %w", err)
	}
	if withTags {
		if err := db.placementTags(ctx, byID); err != nil {
			return nil, nil, err
		}
	}
	loads, err := db.HostLoads(ctx)
	if err != nil {
		return nil, nil, err
	}
	return hosts, loads, nil
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
	rows, err := db.r.query(ctx, `SELECT host_id, COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0)
		FROM sandboxes WHERE status IN (?, ?, ?) GROUP BY host_id`,
		string(wrenn.StatusPending), string(wrenn.StatusRunning), string(wrenn.StatusMissing))
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
