package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wrennhq/wrenn"
)

// The agent link (issue 13): the fleet's CA, the certificates it gave
// hosts' agents, registration and heartbeats. internal/fleet decides; these
// queries keep the records.

// FleetCA returns the fleet CA's certificate and key, PEM, or ENotFound
// before one was made.
func (db *DB) FleetCA(ctx context.Context) (certPEM, keyPEM string, err error) {
	err = db.r.queryRow(ctx, `SELECT cert_pem, key_pem FROM fleet_ca WHERE id = 1`).Scan(&certPEM, &keyPEM)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", notFound("fleet CA")
	}
	if err != nil {
		return "", "", fmt.Errorf("fleet CA: %w", err)
	}
	return certPEM, keyPEM, nil
}

// InitFleetCA stores the fleet CA unless one is stored already, and
// returns the one stored: of several control planes starting at once on
// one database, one CA wins and all use it.
func (db *DB) InitFleetCA(ctx context.Context, certPEM, keyPEM string, at time.Time) (string, string, error) {
	if _, err := db.w.exec(ctx, `INSERT INTO fleet_ca (id, cert_pem, key_pem, created_at) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, certPEM, keyPEM, db.d.time(at)); err != nil {
		return "", "", fmt.Errorf("init fleet CA: %w", err)
	}
	return db.FleetCA(ctx)
}

// RegisterHost registers the pending host whose registration token has
// that hash: it records the agent's specs and its first certificate,
// marks the host online with a heartbeat at at, and uses the token up, in
// one transaction. A token already used, replaced, or of a host no longer
// pending is EUnauthorized: of two registrations racing with one token,
// one wins.
func (db *DB) RegisterHost(ctx context.Context, id string, tokenHash []byte, specs wrenn.HostSpecs, cert wrenn.HostCertificate, at time.Time) (*wrenn.Host, error) {
	var h *wrenn.Host
	err := db.tx(ctx, func(c conn) error {
		var err error
		capVCPUs, capMemory := nullCapacity(specs.Capacity)
		h, err = scanHost(c.queryRow(ctx, `UPDATE hosts SET arch = ?, cpu_cores = ?, memory_mb = ?, disk_gb = ?, address = ?,
			capacity_vcpus = ?, capacity_memory_mb = ?,
			status = ?, last_heartbeat_at = ?, token_hash = NULL, token_expires_at = NULL, updated_at = ?
			WHERE id = ? AND status = ? AND token_hash = ? RETURNING `+hostColumns,
			nullString(specs.Arch), specs.CPUCores, specs.MemoryMB, specs.DiskGB, nullString(specs.Address),
			capVCPUs, capMemory, string(wrenn.HostOnline), db.d.time(at), db.d.time(at), id, string(wrenn.HostPending), tokenHash))
		if errors.Is(err, sql.ErrNoRows) {
			return wrenn.Errorf(wrenn.EUnauthorized, "invalid or expired registration token")
		}
		if err != nil {
			return fmt.Errorf("register host: %w", err)
		}
		return addHostCertificate(ctx, c, db.d, cert)
	})
	if err != nil {
		return nil, wrapUnlessDomain("register host", err)
	}
	if h.Tags, err = db.HostTags(ctx, id); err != nil {
		return nil, err
	}
	return h, nil
}

func addHostCertificate(ctx context.Context, c conn, d dialect, cert wrenn.HostCertificate) error {
	_, err := c.exec(ctx, `INSERT INTO host_certificates (serial, host_id, not_after, revoked_at, created_at) VALUES (?, ?, ?, ?, ?)`,
		cert.Serial, cert.HostID, d.time(cert.NotAfter), d.nullTime(cert.RevokedAt), d.time(cert.CreatedAt))
	if d.isUniqueViolation(err) {
		return conflict("certificate serial already recorded")
	}
	if err != nil {
		return fmt.Errorf("record host certificate: %w", err)
	}
	return nil
}

// AddHostCertificate records a certificate given to a host's agent (a
// renewal's).
func (db *DB) AddHostCertificate(ctx context.Context, cert wrenn.HostCertificate) error {
	return wrapUnlessDomain("add host certificate", addHostCertificate(ctx, db.w, db.d, cert))
}

// HostCertificate returns the record of the certificate of that serial,
// or ENotFound.
func (db *DB) HostCertificate(ctx context.Context, serial string) (*wrenn.HostCertificate, error) {
	var c wrenn.HostCertificate
	err := db.r.queryRow(ctx, `SELECT serial, host_id, not_after, revoked_at, created_at FROM host_certificates WHERE serial = ?`, serial).
		Scan(&c.Serial, &c.HostID, timeCol{&c.NotAfter}, nullTimeCol{&c.RevokedAt}, timeCol{&c.CreatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("host certificate")
	}
	if err != nil {
		return nil, fmt.Errorf("host certificate: %w", err)
	}
	return &c, nil
}

// RevokeHostCertificates revokes, at at, every certificate of the host not
// revoked yet, and returns how many.
func (db *DB) RevokeHostCertificates(ctx context.Context, hostID string, at time.Time) (int, error) {
	res, err := db.w.exec(ctx, `UPDATE host_certificates SET revoked_at = ? WHERE host_id = ? AND revoked_at IS NULL`,
		db.d.time(at), hostID)
	if err != nil {
		return 0, fmt.Errorf("revoke host certificates: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// HostHeartbeat records a heartbeat of a registered host at at: an
// unreachable or offline host is online again (a drain stays), and its
// capacity is what the heartbeat reports (nil, an agent that reports
// none: none recorded). A pending host is EConflict; an unknown one
// ENotFound.
func (db *DB) HostHeartbeat(ctx context.Context, id string, at time.Time, capacity *wrenn.HostCapacity) (*wrenn.Host, error) {
	capVCPUs, capMemory := nullCapacity(capacity)
	h, err := scanHost(db.w.queryRow(ctx, `UPDATE hosts SET last_heartbeat_at = ?, capacity_vcpus = ?, capacity_memory_mb = ?,
		updated_at = CASE WHEN status = ? THEN updated_at ELSE ? END, status = ?
		WHERE id = ? AND status <> ? RETURNING `+hostColumns,
		db.d.time(at), capVCPUs, capMemory, string(wrenn.HostOnline), db.d.time(at), string(wrenn.HostOnline), id, string(wrenn.HostPending)))
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := db.GetHost(ctx, id); err != nil {
			return nil, err
		}
		return nil, conflict("host is pending: it registers before it heartbeats")
	}
	if err != nil {
		return nil, fmt.Errorf("host heartbeat: %w", err)
	}
	if h.Tags, err = db.HostTags(ctx, id); err != nil {
		return nil, err
	}
	return h, nil
}

// MarkHostsUnreachable marks unreachable, at at, every online host whose
// last heartbeat is before before, and returns their IDs.
func (db *DB) MarkHostsUnreachable(ctx context.Context, before, at time.Time) ([]string, error) {
	ids, err := db.w.queryStrings(ctx, `UPDATE hosts SET status = ?, updated_at = ?
		WHERE status = ? AND (last_heartbeat_at IS NULL OR last_heartbeat_at < ?) RETURNING id`,
		string(wrenn.HostUnreachable), db.d.time(at), string(wrenn.HostOnline), db.d.time(before))
	if err != nil {
		return nil, fmt.Errorf("mark hosts unreachable: %w", err)
	}
	return ids, nil
}

// RevokeHost revokes, at at, every certificate of a registered host and
// returns it to pending with no registration token (a new one lets its
// agent join again), in one transaction. A host already pending is no
// change; an unknown one ENotFound.
func (db *DB) RevokeHost(ctx context.Context, id string, at time.Time) (*wrenn.Host, error) {
	var h *wrenn.Host
	err := db.tx(ctx, func(c conn) error {
		if err := db.lockHost(ctx, c, id); err != nil {
			return err
		}
		if _, err := c.exec(ctx, `UPDATE host_certificates SET revoked_at = ? WHERE host_id = ? AND revoked_at IS NULL`,
			db.d.time(at), id); err != nil {
			return fmt.Errorf("revoke host certificates: %w", err)
		}
		var err error
		h, err = scanHost(c.queryRow(ctx, `UPDATE hosts SET status = ?, token_hash = NULL, token_expires_at = NULL,
			updated_at = CASE WHEN status = ? THEN updated_at ELSE ? END WHERE id = ? RETURNING `+hostColumns,
			string(wrenn.HostPending), string(wrenn.HostPending), db.d.time(at), id))
		if err != nil {
			return fmt.Errorf("revoke host: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, wrapUnlessDomain("revoke host", err)
	}
	if h.Tags, err = db.HostTags(ctx, id); err != nil {
		return nil, err
	}
	return h, nil
}
