package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Shared stores (issue 13, migration 00008): which store directory a host's
// agent keeps paused sandboxes and snapshot templates in, and which store a
// snapshot template was made in. internal/control decides; these keep the
// records.

// SetHostStore records the shared store host id's agent reports, "" for
// none.
func (db *DB) SetHostStore(ctx context.Context, id, storeID string) error {
	if _, err := db.w.exec(ctx, `UPDATE hosts SET store_id = ? WHERE id = ?`, nullString(storeID), id); err != nil {
		return fmt.Errorf("set host store: %w", err)
	}
	return nil
}

// HostStore returns the shared store recorded for host id: "" for none, or
// for a host with no record (the control plane's own agent).
func (db *DB) HostStore(ctx context.Context, id string) (string, error) {
	var s sql.NullString
	err := db.r.queryRow(ctx, `SELECT store_id FROM hosts WHERE id = ?`, id).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("host store: %w", err)
	}
	return s.String, nil
}

// StoreHosts returns the IDs of the hosts recorded with shared store
// storeID.
func (db *DB) StoreHosts(ctx context.Context, storeID string) ([]string, error) {
	ids, err := db.r.queryStrings(ctx, `SELECT id FROM hosts WHERE store_id = ? ORDER BY id`, storeID)
	if err != nil {
		return nil, fmt.Errorf("store hosts: %w", err)
	}
	return ids, nil
}

// SetTemplateStore records the shared store the team's snapshot template
// name was made in, "" for none (only the host that made it has it).
func (db *DB) SetTemplateStore(ctx context.Context, teamID, name, storeID string) error {
	if _, err := db.w.exec(ctx, `UPDATE templates SET store_id = ? WHERE team_id = ? AND name = ?`,
		nullString(storeID), teamID, name); err != nil {
		return fmt.Errorf("set template store: %w", err)
	}
	return nil
}

// TemplateStore returns the shared store recorded for the team's template
// name: "" for none or for no such template.
func (db *DB) TemplateStore(ctx context.Context, teamID, name string) (string, error) {
	var s sql.NullString
	err := db.r.queryRow(ctx, `SELECT store_id FROM templates WHERE team_id = ? AND name = ?`, teamID, name).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("template store: %w", err)
	}
	return s.String, nil
}
