package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/wrennhq/wrenn"
)

// roleOwner is the role a user holds in the team made with their account.
const roleOwner = "owner"

// CreateAccount records u, their team t, and u's owner membership of t in
// one transaction. If u's email is taken, whatever its case, it returns
// EConflict and writes nothing. Times in u and t are normalised to UTC
// microseconds, as stored; the membership dates from u.CreatedAt.
func (db *DB) CreateAccount(ctx context.Context, u *wrenn.User, t *wrenn.Team) error {
	u.CreatedAt = normTime(u.CreatedAt)
	t.CreatedAt = normTime(t.CreatedAt)
	err := db.tx(ctx, func(c conn) error {
		_, err := c.exec(ctx, `INSERT INTO users (id, email, email_lower, password_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
			u.ID, u.Email, emailKey(u.Email), u.PasswordHash, db.d.time(u.CreatedAt))
		if db.d.isUniqueViolation(err) {
			// IDs are 80 random bits, so the unique key that clashed is the email.
			return conflict("email already registered")
		}
		if err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		if _, err := c.exec(ctx, `INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)`,
			t.ID, t.Name, db.d.time(t.CreatedAt)); err != nil {
			return fmt.Errorf("insert team: %w", err)
		}
		if _, err := c.exec(ctx, `INSERT INTO memberships (user_id, team_id, role, created_at) VALUES (?, ?, ?, ?)`,
			u.ID, t.ID, roleOwner, db.d.time(u.CreatedAt)); err != nil {
			return fmt.Errorf("insert membership: %w", err)
		}
		return nil
	})
	return wrapUnlessDomain("create account", err)
}

// UserByEmail returns the user with that email, compared without case.
func (db *DB) UserByEmail(ctx context.Context, email string) (*wrenn.User, error) {
	var u wrenn.User
	err := db.r.queryRow(ctx, `SELECT id, email, password_hash, created_at FROM users WHERE email_lower = ?`, emailKey(email)).
		Scan(&u.ID, &u.Email, &u.PasswordHash, timeCol{&u.CreatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("user")
	}
	if err != nil {
		return nil, fmt.Errorf("user by email: %w", err)
	}
	return &u, nil
}

// DefaultTeam returns the team of the user's earliest membership.
func (db *DB) DefaultTeam(ctx context.Context, userID string) (*wrenn.Team, error) {
	var t wrenn.Team
	err := db.r.queryRow(ctx, `
		SELECT t.id, t.name, t.created_at
		FROM memberships m JOIN teams t ON t.id = m.team_id
		WHERE m.user_id = ?
		ORDER BY m.created_at, m.team_id
		LIMIT 1`, userID).
		Scan(&t.ID, &t.Name, timeCol{&t.CreatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("team")
	}
	if err != nil {
		return nil, fmt.Errorf("default team: %w", err)
	}
	return &t, nil
}

// IsMember reports whether the user belongs to the team.
func (db *DB) IsMember(ctx context.Context, userID, teamID string) (bool, error) {
	var one int
	err := db.r.queryRow(ctx, `SELECT 1 FROM memberships WHERE user_id = ? AND team_id = ?`, userID, teamID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("is member: %w", err)
	}
	return true, nil
}

// emailKey is the form of an email that uniqueness and lookup compare. It
// is computed in Go so both engines agree on non-ASCII letters.
func emailKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }
