package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wrennhq/wrenn"
)

const sandboxColumns = `id, team_id, template, status, vcpus, memory_mb, timeout_sec, guest_ip, host_ip, host_id,
	created_at, started_at, last_active_at, last_updated, network, on_timeout, paused_by, envs, metadata`

func scanSandbox(row interface{ Scan(...any) error }) (*wrenn.Sandbox, error) {
	var sb wrenn.Sandbox
	var onTimeout, pausedBy string
	err := row.Scan(&sb.ID, &sb.TeamID, &sb.Template, &sb.Status, &sb.VCPUs, &sb.MemoryMB, &sb.TimeoutSec,
		&sb.GuestIP, &sb.HostIP, &sb.HostID,
		timeCol{&sb.CreatedAt}, nullTimeCol{&sb.StartedAt}, nullTimeCol{&sb.LastActiveAt}, timeCol{&sb.LastUpdated},
		networkCol{&sb.Network}, &onTimeout, &pausedBy, stringMapCol{&sb.Envs}, stringMapCol{&sb.Metadata})
	if err != nil {
		return nil, err
	}
	sb.AutoPause = onTimeout == onTimeoutPause
	sb.AutoPaused = sb.Status == wrenn.StatusPaused && pausedBy == pausedByTimeout
	return &sb, nil
}

func scanSandboxes(rows *sql.Rows) ([]*wrenn.Sandbox, error) {
	defer rows.Close()
	sbs := []*wrenn.Sandbox{}
	for rows.Next() {
		sb, err := scanSandbox(rows)
		if err != nil {
			return nil, err
		}
		sbs = append(sbs, sb)
	}
	return sbs, rows.Err()
}

// normSandboxTimes normalises sb's times to UTC microseconds, as stored.
func normSandboxTimes(sb *wrenn.Sandbox) {
	sb.CreatedAt = normTime(sb.CreatedAt)
	sb.StartedAt = normTimePtr(sb.StartedAt)
	sb.LastActiveAt = normTimePtr(sb.LastActiveAt)
	sb.LastUpdated = normTime(sb.LastUpdated)
}

// CreateSandbox records sb. Its times are normalised to UTC microseconds,
// as stored. An ID already recorded is EConflict.
func (db *DB) CreateSandbox(ctx context.Context, sb *wrenn.Sandbox) error {
	normSandboxTimes(sb)
	if err := db.insertSandbox(ctx, db.w, sb); err != nil {
		return wrapUnlessDomain("create sandbox", err)
	}
	return nil
}

// insertSandbox writes sb's row on c; an ID already recorded is EConflict.
func (db *DB) insertSandbox(ctx context.Context, c conn, sb *wrenn.Sandbox) error {
	_, err := c.exec(ctx, `INSERT INTO sandboxes (`+sandboxColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sb.ID, sb.TeamID, sb.Template, string(sb.Status), sb.VCPUs, sb.MemoryMB, sb.TimeoutSec,
		sb.GuestIP, sb.HostIP, sb.HostID,
		db.d.time(sb.CreatedAt), db.d.nullTime(sb.StartedAt), db.d.nullTime(sb.LastActiveAt), db.d.time(sb.LastUpdated),
		networkValue(sb.Network), onTimeoutValue(sb.AutoPause), pausedByValue(sb), stringMapValue(sb.Envs), stringMapValue(sb.Metadata))
	if db.d.isUniqueViolation(err) {
		return conflict("sandbox already exists")
	}
	return err
}

// GetSandbox returns the team's sandbox id. Another team's is not found.
func (db *DB) GetSandbox(ctx context.Context, teamID, id string) (*wrenn.Sandbox, error) {
	sb, err := scanSandbox(db.r.queryRowPrepared(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE team_id = ? AND id = ?`, teamID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("sandbox")
	}
	if err != nil {
		return nil, fmt.Errorf("get sandbox: %w", err)
	}
	return sb, nil
}

// ListSandboxes returns the team's sandboxes whose status is one of
// statuses (none: every status), newest first.
func (db *DB) ListSandboxes(ctx context.Context, teamID string, statuses ...wrenn.SandboxStatus) ([]*wrenn.Sandbox, error) {
	q, args := `SELECT `+sandboxColumns+` FROM sandboxes WHERE team_id = ?`, []any{teamID}
	if len(statuses) > 0 {
		q += ` AND status IN (` + placeholders(len(statuses)) + `)`
		args = append(args, statusArgs(statuses)...)
	}
	rows, err := db.r.query(ctx, q+` ORDER BY created_at DESC, id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	sbs, err := scanSandboxes(rows)
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	return sbs, nil
}

// SandboxesByStatus returns every team's sandboxes whose status is one of
// statuses, oldest first. No statuses gives none.
func (db *DB) SandboxesByStatus(ctx context.Context, statuses ...wrenn.SandboxStatus) ([]*wrenn.Sandbox, error) {
	if len(statuses) == 0 {
		return []*wrenn.Sandbox{}, nil
	}
	rows, err := db.r.query(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE status IN (`+placeholders(len(statuses))+`)
		ORDER BY created_at, id`, statusArgs(statuses)...)
	if err != nil {
		return nil, fmt.Errorf("sandboxes by status: %w", err)
	}
	sbs, err := scanSandboxes(rows)
	if err != nil {
		return nil, fmt.Errorf("sandboxes by status: %w", err)
	}
	return sbs, nil
}

// UpdateSandbox writes sb's mutable fields — status, addresses, host, and
// times other than CreatedAt — to the row with sb's team and ID, or returns
// ENotFound. Its times are normalised to UTC microseconds, as stored.
func (db *DB) UpdateSandbox(ctx context.Context, sb *wrenn.Sandbox) error {
	normSandboxTimes(sb)
	err := db.w.execOne(ctx, "sandbox", `UPDATE sandboxes
		SET status = ?, paused_by = ?, guest_ip = ?, host_ip = ?, host_id = ?, started_at = ?, last_active_at = ?, last_updated = ?
		WHERE team_id = ? AND id = ?`,
		string(sb.Status), pausedByValue(sb), sb.GuestIP, sb.HostIP, sb.HostID,
		db.d.nullTime(sb.StartedAt), db.d.nullTime(sb.LastActiveAt), db.d.time(sb.LastUpdated),
		sb.TeamID, sb.ID)
	return wrapUnlessDomain("update sandbox", err)
}

// transitionAttempts bounds how often TransitionSandbox retries when its
// compare-and-set fails yet the status it then reads is one of from, which
// means another writer changed the status in between.
const transitionAttempts = 3

// TransitionSandbox moves the team's sandbox id to status to, but only if
// its status is one of from, in a single atomic UPDATE, setting
// last_updated to at. It returns the updated sandbox, ENotFound if there is
// no such sandbox, or EConflict naming the status it is in.
func (db *DB) TransitionSandbox(ctx context.Context, teamID, id string, from []wrenn.SandboxStatus, to wrenn.SandboxStatus, at time.Time) (*wrenn.Sandbox, error) {
	for attempt := 1; ; attempt++ {
		if len(from) > 0 {
			args := append([]any{string(to), db.d.time(at), teamID, id}, statusArgs(from)...)
			sb, err := scanSandbox(db.w.queryRow(ctx, `UPDATE sandboxes SET status = ?, paused_by = '', last_updated = ?
				WHERE team_id = ? AND id = ? AND status IN (`+placeholders(len(from))+`)
				RETURNING `+sandboxColumns, args...))
			if err == nil {
				return sb, nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("transition sandbox: %w", err)
			}
		}
		// The compare-and-set matched nothing: say why.
		var cur wrenn.SandboxStatus
		err := db.r.queryRow(ctx, `SELECT status FROM sandboxes WHERE team_id = ? AND id = ?`, teamID, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound("sandbox")
		}
		if err != nil {
			return nil, fmt.Errorf("transition sandbox: %w", err)
		}
		if !slices.Contains(from, cur) || attempt == transitionAttempts {
			return nil, conflict("sandbox is " + string(cur))
		}
	}
}

// StopIdleSandbox moves the team's running sandbox id to stopped, setting
// last_updated to at, but only if it has had no activity after idleSince
// (its last activity, or its creation if it has none, is not later), in
// a single atomic UPDATE: activity recorded since the caller judged it idle
// keeps it running. It returns the updated sandbox, ENotFound if there is
// no such sandbox, or EConflict if it is not running or has been active.
func (db *DB) StopIdleSandbox(ctx context.Context, teamID, id string, idleSince, at time.Time) (*wrenn.Sandbox, error) {
	return db.idleTo(ctx, teamID, id, wrenn.StatusStopped, "", idleSince, at)
}

// PauseIdleSandbox is StopIdleSandbox for a sandbox whose timeout pauses
// it: it moves to paused, recorded as paused by its timeout (AutoPaused).
func (db *DB) PauseIdleSandbox(ctx context.Context, teamID, id string, idleSince, at time.Time) (*wrenn.Sandbox, error) {
	return db.idleTo(ctx, teamID, id, wrenn.StatusPaused, pausedByTimeout, idleSince, at)
}

func (db *DB) idleTo(ctx context.Context, teamID, id string, to wrenn.SandboxStatus, pausedBy string, idleSince, at time.Time) (*wrenn.Sandbox, error) {
	sb, err := scanSandbox(db.w.queryRow(ctx, `UPDATE sandboxes SET status = ?, paused_by = ?, last_updated = ?
		WHERE team_id = ? AND id = ? AND status = ? AND COALESCE(last_active_at, created_at) <= ?
		RETURNING `+sandboxColumns,
		string(to), pausedBy, db.d.time(at), teamID, id, string(wrenn.StatusRunning), db.d.time(idleSince)))
	if err == nil {
		return sb, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s idle sandbox: %w", to, err)
	}
	var cur wrenn.SandboxStatus
	err = db.r.queryRow(ctx, `SELECT status FROM sandboxes WHERE team_id = ? AND id = ?`, teamID, id).Scan(&cur)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, notFound("sandbox")
	case err != nil:
		return nil, fmt.Errorf("%s idle sandbox: %w", to, err)
	case cur != wrenn.StatusRunning:
		return nil, conflict("sandbox is " + string(cur))
	}
	return nil, conflict("sandbox has been active")
}

// DeleteStoppedBefore deletes every team's stopped sandboxes last updated
// before before: the end of their retention. It returns how many it deleted.
func (db *DB) DeleteStoppedBefore(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.w.exec(ctx, `DELETE FROM sandboxes WHERE status = ? AND last_updated < ?`,
		string(wrenn.StatusStopped), db.d.time(before))
	if err != nil {
		return 0, fmt.Errorf("delete stopped sandboxes: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete stopped sandboxes: %w", err)
	}
	return n, nil
}

// TouchSandbox records activity in the team's sandbox id at at. Another
// team's sandbox is not found.
func (db *DB) TouchSandbox(ctx context.Context, teamID, id string, at time.Time) error {
	err := db.w.execOne(ctx, "sandbox", `UPDATE sandboxes SET last_active_at = ? WHERE team_id = ? AND id = ?`,
		db.d.time(at), teamID, id)
	return wrapUnlessDomain("touch sandbox", err)
}

// DeleteSandbox deletes the team's sandbox id. Another team's sandbox is
// not found.
func (db *DB) DeleteSandbox(ctx context.Context, teamID, id string) error {
	err := db.w.execOne(ctx, "sandbox", `DELETE FROM sandboxes WHERE team_id = ? AND id = ?`, teamID, id)
	return wrapUnlessDomain("delete sandbox", err)
}

func statusArgs(statuses []wrenn.SandboxStatus) []any {
	args := make([]any, len(statuses))
	for i, s := range statuses {
		args[i] = string(s)
	}
	return args
}

// networkCol scans a sandbox's recorded egress policy; an empty one is a sandbox
// recorded before policies existed, which had the default.
type networkCol struct{ n *wrenn.Network }

func (c networkCol) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("network column: unexpected %T", src)
	}
	if len(b) == 0 {
		*c.n = wrenn.DefaultNetwork
		return nil
	}
	// Most sandboxes have no rules: their policy is one of two texts,
	// read without the JSON decoder (every GET of a sandbox reads it).
	switch string(b) {
	case `{"internet":true}`:
		*c.n = wrenn.Network{Internet: true}
		return nil
	case `{"internet":false}`:
		*c.n = wrenn.Network{}
		return nil
	}
	var n wrenn.Network
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("network column: %w", err)
	}
	*c.n = n
	return nil
}

func networkValue(n wrenn.Network) string {
	b, _ := json.Marshal(n) // strings and a bool: cannot fail
	return string(b)
}

// What a sandbox's inactivity timeout does (column on_timeout), and why a
// paused sandbox was paused (column paused_by).
const (
	onTimeoutDestroy = "destroy"
	onTimeoutPause   = "pause"
	pausedByTimeout  = "timeout"
)

func onTimeoutValue(autoPause bool) string {
	if autoPause {
		return onTimeoutPause
	}
	return onTimeoutDestroy
}

func pausedByValue(sb *wrenn.Sandbox) string {
	if sb.Status == wrenn.StatusPaused && sb.AutoPaused {
		return pausedByTimeout
	}
	return ""
}

// stringMapCol scans a JSON object of strings; ” is none (nil).
type stringMapCol struct{ m *map[string]string }

func (c stringMapCol) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("string map column: unexpected %T", src)
	}
	if len(b) == 0 {
		*c.m = nil
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("string map column: %w", err)
	}
	*c.m = m
	return nil
}

func stringMapValue(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m) // strings only: cannot fail
	return string(b)
}
