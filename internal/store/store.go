// Package store keeps Wrenn's control-plane records — users, teams and
// their memberships, API keys, sandboxes and templates — in a SQL database.
//
// One implementation of the queries serves two engines, chosen at Open: an
// embedded SQLite file (modernc.org/sqlite, no cgo) when no database URL is
// configured, and PostgreSQL (pgx) when one is. The few places where the
// engines differ — placeholders, timestamp encoding, unique-violation codes,
// migrations — live in dialect.go, timestamp.go and the migrations directory.
//
// Only wrenn's domain types cross this package's boundary; database types
// stay inside it. Errors callers act on are *wrenn.Error (ENotFound,
// EConflict); any other failure is returned wrapped with the operation.
// The control plane and its tests may import this package; nothing below
// the control plane should.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/wrennhq/wrenn"
)

// Engine names, as returned by (*DB).Engine.
const (
	EngineSQLite   = "sqlite"
	EnginePostgres = "postgres"
)

// Config says which database to open.
type Config struct {
	DatabaseURL string // postgres://… ; empty means SQLite at SQLitePath
	SQLitePath  string // the SQLite database file; its directory is created if missing
}

// DB is Wrenn's store. It is safe for concurrent use by many goroutines.
type DB struct {
	// w runs writes and transactions. On SQLite its pool holds a single
	// connection, so writers queue in Go instead of failing with SQLITE_BUSY.
	w conn
	// r runs plain reads. On SQLite it is a separate read-only pool, which
	// WAL lets read while a write is in progress; on PostgreSQL it is the
	// same pool as w.
	r conn
	d dialect
}

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// Open opens the database cfg names, checks that it answers, and applies
// any schema migrations it has not had yet.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.DatabaseURL != "" {
		return openPostgres(ctx, cfg.DatabaseURL)
	}
	return openSQLite(ctx, cfg.SQLitePath)
}

// Close closes the database's connection pools.
func (db *DB) Close() error {
	err := errors.Join(db.w.stmts.close(), db.w.pool.Close())
	if db.r.pool != db.w.pool {
		err = errors.Join(err, db.r.stmts.close(), db.r.pool.Close())
	}
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Engine returns "sqlite" or "postgres".
func (db *DB) Engine() string { return db.d.engine }

// migrate applies the engine's embedded migrations that pool has not had.
func migrate(ctx context.Context, pool *sql.DB, d dialect) error {
	p, err := migrator(pool, d)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// migrator returns the goose provider of the engine's embedded migrations
// on pool.
func migrator(pool *sql.DB, d dialect) (*goose.Provider, error) {
	fsys, err := fs.Sub(migrationFiles, "migrations/"+d.engine)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", d.engine, err)
	}
	opts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(goose.NopLogger()),
	}
	gd := goose.DialectSQLite3
	if d.engine == EnginePostgres {
		gd = goose.DialectPostgres
		// Several control planes may start at once against one database;
		// an advisory lock makes one migrate while the others wait.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, pool, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("migration provider: %w", err)
	}
	return p, nil
}

// tx runs fn in one transaction on the write pool, committing if fn returns
// nil and rolling back otherwise. fn's error is returned as is.
func (db *DB) tx(ctx context.Context, fn func(c conn) error) error {
	tx, err := db.w.pool.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(conn{q: tx, d: db.d}); err != nil {
		_ = tx.Rollback() // fn's error says what went wrong
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// notFound returns the ENotFound error for thing, e.g. "sandbox".
func notFound(thing string) error {
	return &wrenn.Error{Code: wrenn.ENotFound, Message: thing + " not found"}
}

// conflict returns the EConflict error with message msg.
func conflict(msg string) error {
	return &wrenn.Error{Code: wrenn.EConflict, Message: msg}
}

// wrapUnlessDomain returns err unchanged if it is a *wrenn.Error, and
// otherwise wraps it with op.
func wrapUnlessDomain(op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*wrenn.Error](err); ok {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}
