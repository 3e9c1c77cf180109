package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// openSQLite opens (creating if need be) the database file at file,
// migrates it, and returns a store with one write connection and a pool of
// read-only ones.
func openSQLite(ctx context.Context, file string) (*DB, error) {
	if file == "" {
		return nil, errors.New("open sqlite: no database file")
	}
	path, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	d := dialect{engine: EngineSQLite}

	// Every connection waits up to busy_timeout for a lock instead of failing.
	// Transactions begin IMMEDIATE, taking the write lock up front, so a
	// transaction never fails upgrading a read lock to a write lock. With a
	// single write connection, writers queue in database/sql anyway; the
	// timeout covers other processes on the same file.
	w, err := sql.Open("sqlite", sqliteDSN(path, "immediate",
		"busy_timeout(5000)", "journal_mode(WAL)", "foreign_keys(ON)", "synchronous(NORMAL)"))
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	if err := migrate(ctx, w, d); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}

	// Readers are opened after migrating, so the file is already in WAL mode.
	r, err := sql.Open("sqlite", sqliteDSN(path, "",
		"busy_timeout(5000)", "foreign_keys(ON)", "query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	return &DB{w: newConn(w, d), r: newConn(r, d), d: d}, nil
}

// sqliteDSN returns a modernc.org/sqlite DSN for the file at path that runs
// pragmas on every new connection and, unless txlock is "", begins
// transactions in that mode. The path is escaped as a file: URI, so any
// characters in it name the file.
func sqliteDSN(path, txlock string, pragmas ...string) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	if txlock != "" {
		q.Set("_txlock", txlock)
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: q.Encode()}
	return u.String()
}
