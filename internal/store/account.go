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
const roleOwner = wrenn.RoleOwner

// CreateAccount records u, their team t, and u's owner membership of t in
// one transaction. If u's email is taken, whatever its case, it returns
// EConflict and writes nothing. Times in u and t are normalised to UTC
// microseconds, as stored; the membership dates from u.CreatedAt.
//
// The first account of a store is a platform admin, whatever u.IsAdmin
// says; later ones are admins only if u.IsAdmin. u.IsAdmin is set to what
// was recorded.
func (db *DB) CreateAccount(ctx context.Context, u *wrenn.User, t *wrenn.Team) error {
	u.CreatedAt = normTime(u.CreatedAt)
	t.CreatedAt = normTime(t.CreatedAt)
	err := db.tx(ctx, func(c conn) error {
		first, err := db.firstAccount(ctx, c)
		if err != nil {
			return err
		}
		admin := u.IsAdmin || first
		_, err = c.exec(ctx, `INSERT INTO users (id, email, email_lower, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			u.ID, u.Email, emailKey(u.Email), u.PasswordHash, admin, db.d.time(u.CreatedAt))
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
		u.IsAdmin = admin
		return nil
	})
	return wrapUnlessDomain("create account", err)
}

// firstAdminLock is the PostgreSQL advisory lock that the creations of a
// store's first accounts take turns on.
const firstAdminLock = 0x7772656e6e01 // "wrenn" 01

// firstAccount reports, inside c's transaction, whether the store has no
// users yet. On PostgreSQL two first signups at once could both see none
// and both become admins, so while there are none they take turns on an
// advisory lock (held until the transaction ends) and look again; once
// there are users (never deleted) nobody waits.
func (db *DB) firstAccount(ctx context.Context, c conn) (bool, error) {
	exists := func() (bool, error) {
		var one int
		err := c.queryRow(ctx, `SELECT 1 FROM users LIMIT 1`).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("count users: %w", err)
		}
		return true, nil
	}
	some, err := exists()
	if err != nil || some {
		return false, err
	}
	if db.d.engine == EnginePostgres {
		if _, err := c.exec(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(firstAdminLock)); err != nil {
			return false, fmt.Errorf("first account lock: %w", err)
		}
		some, err = exists()
	}
	return !some, err
}

// UserByEmail returns the user with that email, compared without case.
func (db *DB) UserByEmail(ctx context.Context, email string) (*wrenn.User, error) {
	var u wrenn.User
	err := db.r.queryRow(ctx, `SELECT id, email, password_hash, is_admin, created_at FROM users WHERE email_lower = ?`, emailKey(email)).
		Scan(&u.ID, &u.Email, &u.PasswordHash, &u.IsAdmin, timeCol{&u.CreatedAt})
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
	err := db.r.queryRowPrepared(ctx, `SELECT 1 FROM memberships WHERE user_id = ? AND team_id = ?`, userID, teamID).Scan(&one)
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

// IsAdmin reports whether the user is a platform admin. An unknown user is
// not.
func (db *DB) IsAdmin(ctx context.Context, userID string) (bool, error) {
	var admin bool
	err := db.r.queryRow(ctx, `SELECT is_admin FROM users WHERE id = ?`, userID).Scan(&admin)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("is admin: %w", err)
	}
	return admin, nil
}

// SetAdmin makes the user with that email (compared without case) a
// platform admin, or no longer one, and returns the user.
func (db *DB) SetAdmin(ctx context.Context, email string, admin bool) (*wrenn.User, error) {
	var u wrenn.User
	err := db.w.queryRow(ctx, `UPDATE users SET is_admin = ? WHERE email_lower = ?
		RETURNING id, email, password_hash, is_admin, created_at`, admin, emailKey(email)).
		Scan(&u.ID, &u.Email, &u.PasswordHash, &u.IsAdmin, timeCol{&u.CreatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("user")
	}
	if err != nil {
		return nil, fmt.Errorf("set admin: %w", err)
	}
	return &u, nil
}

// MemberRole returns the user's role in the team ("owner" for the team
// made with their account), or "" if they are not a member.
func (db *DB) MemberRole(ctx context.Context, userID, teamID string) (string, error) {
	var role string
	err := db.r.queryRow(ctx, `SELECT role FROM memberships WHERE user_id = ? AND team_id = ?`, userID, teamID).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("member role: %w", err)
	}
	return role, nil
}
