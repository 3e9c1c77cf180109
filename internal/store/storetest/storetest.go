// Package storetest opens fresh stores for tests, on every engine the
// environment provides. Any package's tests may import it; nothing else
// should.
//
// SQLite is always available. PostgreSQL is tested when
// WRENN_TEST_DATABASE_URL names a server where the user may create
// databases; each MustOpen gets a database of its own, dropped at cleanup,
// so parallel tests and packages never share state.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for creating and dropping databases

	"github.com/wrennhq/wrenn/internal/store"
)

// Environment variables that choose the engines under test.
const (
	// EnvDatabaseURL is a postgres:// URL of a server to create test
	// databases on; unset skips PostgreSQL.
	EnvDatabaseURL = "WRENN_TEST_DATABASE_URL"
	// EnvRequirePostgres set to "1" fails tests when EnvDatabaseURL is
	// unset, so CI cannot silently test SQLite alone.
	EnvRequirePostgres = "WRENN_REQUIRE_POSTGRES"
)

// adminTimeout bounds creating or dropping a test database.
const adminTimeout = 30 * time.Second

// Engines returns the engines to test: always "sqlite"; "postgres" when
// WRENN_TEST_DATABASE_URL is set. If WRENN_REQUIRE_POSTGRES=1 and the URL
// is unset it calls tb.Fatal.
func Engines(tb testing.TB) []string {
	tb.Helper()
	engines := []string{store.EngineSQLite}
	if os.Getenv(EnvDatabaseURL) != "" {
		return append(engines, store.EnginePostgres)
	}
	if os.Getenv(EnvRequirePostgres) == "1" {
		tb.Fatalf("%s=1 but %s is unset", EnvRequirePostgres, EnvDatabaseURL)
	}
	return engines
}

// MustOpen opens a fresh, empty, migrated store of that engine and closes
// and removes it in tb.Cleanup. SQLite: a file in tb.TempDir(). Postgres: a
// database with a unique random name on the server of
// WRENN_TEST_DATABASE_URL, dropped WITH (FORCE) at cleanup.
func MustOpen(tb testing.TB, engine string) *store.DB {
	tb.Helper()
	var cfg store.Config
	switch engine {
	case store.EngineSQLite:
		cfg.SQLitePath = filepath.Join(tb.TempDir(), "wrenn.db")
	case store.EnginePostgres:
		cfg.DatabaseURL = MustCreateDatabase(tb)
	default:
		tb.Fatalf("storetest: unknown engine %q", engine)
	}
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("storetest: open %s store: %v", engine, err)
	}
	// Registered after the database's drop, so it runs before it.
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("storetest: close %s store: %v", engine, err)
		}
	})
	return db
}

// MustCreateDatabase creates an empty database on the server of
// WRENN_TEST_DATABASE_URL, registers its drop with tb.Cleanup, and returns
// its URL.
func MustCreateDatabase(tb testing.TB) string {
	tb.Helper()
	adminURL := os.Getenv(EnvDatabaseURL)
	if adminURL == "" {
		tb.Fatalf("storetest: %s is unset", EnvDatabaseURL)
	}
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		tb.Fatalf("storetest: %s must be a postgres:// URL", EnvDatabaseURL)
	}
	name := "wrenn_test_" + randomHex(tb, 8)

	// name is ours and plain [a-z0-9_], so double quotes suffice.
	if err := adminExec(adminURL, `CREATE DATABASE "`+name+`"`); err != nil {
		tb.Fatalf("storetest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if err := adminExec(adminURL, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			tb.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// adminExec runs one statement on the server of adminURL over a connection
// of its own, so no admin connection stays open while tests run.
func adminExec(adminURL, stmt string) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = admin.ExecContext(ctx, stmt)
	return err
}

func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("storetest: random name: %v", err)
	}
	return hex.EncodeToString(b)
}
