package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wrennhq/wrenn"
)

const apiKeyColumns = `id, team_id, name, key_prefix, key_hash, created_by, created_at, last_used`

func scanAPIKey(row interface{ Scan(...any) error }) (*wrenn.APIKey, error) {
	var k wrenn.APIKey
	err := row.Scan(&k.ID, &k.TeamID, &k.Name, &k.KeyPrefix, &k.KeyHash, &k.CreatedBy,
		timeCol{&k.CreatedAt}, nullTimeCol{&k.LastUsed})
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// CreateAPIKey records k. Its times are normalised to UTC microseconds, as
// stored. A key whose ID or hash is already recorded is EConflict.
func (db *DB) CreateAPIKey(ctx context.Context, k *wrenn.APIKey) error {
	k.CreatedAt = normTime(k.CreatedAt)
	k.LastUsed = normTimePtr(k.LastUsed)
	_, err := db.w.exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.TeamID, k.Name, k.KeyPrefix, k.KeyHash, k.CreatedBy, db.d.time(k.CreatedAt), db.d.nullTime(k.LastUsed))
	if db.d.isUniqueViolation(err) {
		return conflict("api key already exists")
	}
	if err != nil {
		return fmt.Errorf("create api key: %w", err)
	}
	return nil
}

// ListAPIKeys returns the team's keys, newest first.
func (db *DB) ListAPIKeys(ctx context.Context, teamID string) ([]*wrenn.APIKey, error) {
	rows, err := db.r.query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE team_id = ? ORDER BY created_at DESC, id DESC`, teamID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	keys := []*wrenn.APIKey{}
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list api keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return keys, nil
}

// DeleteAPIKey deletes the team's key id. Another team's key is not found.
func (db *DB) DeleteAPIKey(ctx context.Context, teamID, id string) error {
	err := db.w.execOne(ctx, "api key", `DELETE FROM api_keys WHERE team_id = ? AND id = ?`, teamID, id)
	return wrapUnlessDomain("delete api key", err)
}

// APIKeyByHash returns the key whose SHA-256 is hash.
func (db *DB) APIKeyByHash(ctx context.Context, hash []byte) (*wrenn.APIKey, error) {
	k, err := scanAPIKey(db.r.queryRowPrepared(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE key_hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("api key")
	}
	if err != nil {
		return nil, fmt.Errorf("api key by hash: %w", err)
	}
	return k, nil
}

// TouchAPIKey records that key id was used at at. An unknown id is
// ENotFound.
func (db *DB) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	err := db.w.execOne(ctx, "api key", `UPDATE api_keys SET last_used = ? WHERE id = ?`, db.d.time(at), id)
	return wrapUnlessDomain("touch api key", err)
}
