package store

import (
	"context"
	"fmt"

	"github.com/wrennhq/wrenn"
)

// PlacementHosts returns what placement decides from (issue 13): the
// hosts that are online and not draining, with their tags, in no order,
// and by host ID what the sandboxes recorded on each host hold — those
// pending or running, which have a VM (a host with none is absent). The
// queries skip what listing hosts does that placement needs not: no sort,
// no host it would pass over.
func (db *DB) PlacementHosts(ctx context.Context) ([]*wrenn.Host, map[string]wrenn.HostLoad, error) {
	rows, err := db.r.query(ctx, `SELECT `+hostColumns+` FROM hosts WHERE status = ? AND draining = ?`,
		string(wrenn.HostOnline), false)
	if err != nil {
		return nil, nil, fmt.Errorf("placement hosts: %w", err)
	}
	defer rows.Close()
	hosts := []*wrenn.Host{}
	byID := map[string]*wrenn.Host{}
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("placement hosts: %w", err)
		}
		hosts = append(hosts, h)
		byID[h.ID] = h
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("placement hosts: %w", err)
	}
	tags, err := db.r.query(ctx, `SELECT host_id, tag FROM host_tags`)
	if err != nil {
		return nil, nil, fmt.Errorf("placement host tags: %w", err)
	}
	defer tags.Close()
	for tags.Next() {
		var id, tag string
		if err := tags.Scan(&id, &tag); err != nil {
			return nil, nil, fmt.Errorf("placement host tags: %w", err)
		}
		if h := byID[id]; h != nil {
			h.Tags = append(h.Tags, tag)
		}
	}
	if err := tags.Err(); err != nil {
		return nil, nil, fmt.Errorf("placement host tags: %w", err)
	}
	loads, err := db.HostLoads(ctx)
	if err != nil {
		return nil, nil, err
	}
	return hosts, loads, nil
}

// HostLoads returns, by host ID, what the sandboxes recorded on each host
// hold: those pending or running. A host with none is absent.
func (db *DB) HostLoads(ctx context.Context) (map[string]wrenn.HostLoad, error) {
	rows, err := db.r.query(ctx, `SELECT host_id, COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0)
		FROM sandboxes WHERE status IN (?, ?) GROUP BY host_id`,
		string(wrenn.StatusPending), string(wrenn.StatusRunning))
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
