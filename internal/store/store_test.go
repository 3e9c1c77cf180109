package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// base is the fixture clock's zero: not UTC and not on a microsecond, so
// every test also checks normalisation.
var base = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("UTC+1", 3600))

// at returns base plus d.
func at(d time.Duration) time.Time { return base.Add(d) }

// forEachEngine runs test in parallel on a fresh store of every engine.
func forEachEngine(t *testing.T, test func(t *testing.T, db *store.DB)) {
	t.Helper()
	t.Parallel()
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			test(t, storetest.MustOpen(t, engine))
		})
	}
}

// wantError fails t unless err is a *wrenn.Error with code and, if msg is
// not empty, message msg.
func wantError(t *testing.T, err error, code, msg string) {
	t.Helper()
	e, ok := errors.AsType[*wrenn.Error](err)
	if !ok {
		t.Fatalf("error = %v, want *wrenn.Error %s %q", err, code, msg)
	}
	if e.Code != code || (msg != "" && e.Message != msg) {
		t.Fatalf("error = %s %q, want %s %q", e.Code, e.Message, code, msg)
	}
}

// mustNoError fails t if err is not nil.
func mustNoError(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// mustEqual fails t unless got and want are deeply equal.
func mustEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\ngot  %s\nwant %s", what, show(got), show(want))
	}
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// mustAccount creates an account for email, made at created.
func mustAccount(t *testing.T, db *store.DB, email string, created time.Time) (*wrenn.User, *wrenn.Team) {
	t.Helper()
	u := &wrenn.User{ID: wrenn.NewID(wrenn.PrefixUser), Email: email, PasswordHash: "$argon2id$fake", CreatedAt: created}
	tm := &wrenn.Team{ID: wrenn.NewID(wrenn.PrefixTeam), Name: email + "'s team", CreatedAt: created}
	mustNoError(t, "create account", db.CreateAccount(t.Context(), u, tm))
	return u, tm
}

// mustSandbox creates a sandbox of team with the given status, made at created.
func mustSandbox(t *testing.T, db *store.DB, teamID string, status wrenn.SandboxStatus, created time.Time) *wrenn.Sandbox {
	t.Helper()
	sb := &wrenn.Sandbox{
		ID: wrenn.NewID(wrenn.PrefixSandbox), TeamID: teamID, Template: "ubuntu", Status: status,
		VCPUs: 2, MemoryMB: 512, TimeoutSec: 300, CreatedAt: created, LastUpdated: created,
		Network:   wrenn.Network{AllowOut: []string{"198.51.100.0/24", "pypi.org"}, DenyOut: []string{"*.example.com"}},
		AutoPause: true, Envs: map[string]string{"LANG": "C.UTF-8"}, Metadata: map[string]string{"app": "x", "env": "dev"},
	}
	mustNoError(t, "create sandbox", db.CreateSandbox(t.Context(), sb))
	return sb
}

// mustCount fails t unless each table has the given number of rows.
func mustCount(t *testing.T, db *store.DB, want map[string]int) {
	t.Helper()
	for table, n := range want {
		got, err := db.CountRows(t.Context(), table)
		mustNoError(t, "count rows", err)
		if got != n {
			t.Errorf("%s has %d rows, want %d", table, got, n)
		}
	}
}

func TestEngine(t *testing.T) {
	t.Parallel()
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			if got := storetest.MustOpen(t, engine).Engine(); got != engine {
				t.Errorf("Engine() = %q, want %q", got, engine)
			}
		})
	}
}

// TestOpenMigrated opens one SQLite file several times, including while it
// is open, and checks that migrating an up-to-date database is a no-op.
func TestOpenMigrated(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// Characters that mean something in a file: URI must still name the file.
	dir := filepath.Join(t.TempDir(), "nested", "data dir ?#%20&x=y")
	cfg := store.Config{SQLitePath: filepath.Join(dir, "wrenn.db")}

	db1, err := store.Open(ctx, cfg)
	mustNoError(t, "first open", err)
	fi, err := os.Stat(dir)
	mustNoError(t, "stat data dir", err)
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("data dir mode = %o, want 700", perm)
	}
	if _, err := os.Stat(filepath.Join(dir, "wrenn.db")); err != nil {
		t.Errorf("wrenn.db: %v", err)
	}
	u, _ := mustAccount(t, db1, "alice@example.com", base)

	db2, err := store.Open(ctx, cfg)
	mustNoError(t, "second open while the first is open", err)
	got, err := db2.UserByEmail(ctx, "alice@example.com")
	mustNoError(t, "user by email through second store", err)
	mustEqual(t, "user", got, u)
	mustNoError(t, "close first", db1.Close())
	mustNoError(t, "close second", db2.Close())

	db3, err := store.Open(ctx, cfg)
	mustNoError(t, "reopen", err)
	defer db3.Close()
	got, err = db3.UserByEmail(ctx, "ALICE@example.com")
	mustNoError(t, "user by email after reopen", err)
	mustEqual(t, "user", got, u)
}

// TestSQLiteSettings checks that the DSN's settings are in effect on both
// the write and the read connections.
func TestSQLiteSettings(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpen(t, store.EngineSQLite)
	tests := []struct {
		pragma, wantWrite, wantRead string
	}{
		{"journal_mode", "wal", "wal"},
		{"foreign_keys", "1", "1"},
		{"busy_timeout", "5000", "5000"},
		{"query_only", "0", "1"},
	}
	for _, tc := range tests {
		w, r, err := db.SQLitePragma(t.Context(), tc.pragma)
		mustNoError(t, tc.pragma, err)
		if w != tc.wantWrite || r != tc.wantRead {
			t.Errorf("%s = %q (write), %q (read); want %q, %q", tc.pragma, w, r, tc.wantWrite, tc.wantRead)
		}
	}
}

// TestForeignKeys checks that rows naming a missing team are refused, and
// that the refusal is an internal error, not a domain one.
func TestForeignKeys(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		sb := &wrenn.Sandbox{ID: wrenn.NewID(wrenn.PrefixSandbox), TeamID: "team-none", Status: wrenn.StatusPending, CreatedAt: base, LastUpdated: base}
		err := db.CreateSandbox(t.Context(), sb)
		if err == nil {
			t.Fatal("created a sandbox of a team that does not exist")
		}
		if code := wrenn.ErrorCode(err); code != wrenn.EInternal {
			t.Errorf("error code = %s, want %s", code, wrenn.EInternal)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	mustNoError(t, "write file", os.WriteFile(file, nil, 0o600))
	tests := []struct {
		name string
		cfg  store.Config
	}{
		{"no data dir", store.Config{}},
		{"data dir is a file", store.Config{SQLitePath: filepath.Join(file, "wrenn.db")}},
		{"bad database url", store.Config{DatabaseURL: "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := store.Open(t.Context(), tc.cfg)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if _, ok := errors.AsType[*wrenn.Error](err); ok {
				t.Errorf("Open error %v is a *wrenn.Error; want a wrapped internal error", err)
			}
		})
	}
}

// TestTimestamps checks that times go in any zone and come out in UTC at
// microsecond precision, truncated not rounded, and sort in time order.
func TestTimestamps(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, team := mustAccount(t, db, "tz@example.com", base)
		tests := []struct {
			name string
			in   time.Time
		}{
			{"fixed zone with nanoseconds", base},
			{"negative zone, last nanosecond of a year", time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("UTC-7", -7*3600))},
			{"unix epoch", time.Unix(0, 0)},
			{"utc on the second", time.Date(2030, 6, 15, 8, 30, 0, 0, time.UTC)},
			{"local now", time.Now()},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				want := time.Unix(tc.in.Unix(), int64(tc.in.Nanosecond()/1000*1000)).UTC()
				started := tc.in
				sb := &wrenn.Sandbox{ID: wrenn.NewID(wrenn.PrefixSandbox), TeamID: team.ID, Status: wrenn.StatusRunning,
					CreatedAt: tc.in, StartedAt: &started, LastUpdated: tc.in}
				mustNoError(t, "create sandbox", db.CreateSandbox(ctx, sb))
				got, err := db.GetSandbox(ctx, team.ID, sb.ID)
				mustNoError(t, "get sandbox", err)
				for name, ts := range map[string]time.Time{"created_at": got.CreatedAt, "started_at": *got.StartedAt, "last_updated": got.LastUpdated} {
					if ts.Location() != time.UTC || !ts.Equal(want) || ts != want {
						t.Errorf("%s = %v (%v), want %v UTC", name, ts, ts.Location(), want)
					}
				}
				if got.LastActiveAt != nil {
					t.Errorf("last_active_at = %v, want nil", got.LastActiveAt)
				}
				mustEqual(t, "sandbox as created", got, sb)
			})
		}

		// Text of different widths or zones must not sort out of time order.
		_, other := mustAccount(t, db, "order@example.com", base)
		t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.FixedZone("UTC+5", 5*3600))
		older := mustSandbox(t, db, other.ID, wrenn.StatusRunning, t0)
		newer := mustSandbox(t, db, other.ID, wrenn.StatusRunning, t0.Add(500*time.Millisecond).In(time.FixedZone("UTC-5", -5*3600)))
		list, err := db.ListSandboxes(ctx, other.ID)
		mustNoError(t, "list sandboxes", err)
		mustEqual(t, "sandboxes newest first", list, []*wrenn.Sandbox{newer, older})
	})
}

// TestConcurrentWrites checks that many goroutines can write at once
// without the engine reporting itself busy.
func TestConcurrentWrites(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, team := mustAccount(t, db, "busy@example.com", base)
		const workers, each = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					sb := &wrenn.Sandbox{ID: wrenn.NewID(wrenn.PrefixSandbox), TeamID: team.ID, Status: wrenn.StatusPending,
						CreatedAt: at(time.Duration(w*each+i) * time.Millisecond), LastUpdated: base}
					if err := db.CreateSandbox(ctx, sb); err != nil {
						errs <- fmt.Errorf("create: %w", err)
						continue
					}
					if err := db.TouchSandbox(ctx, team.ID, sb.ID, at(time.Second)); err != nil {
						errs <- fmt.Errorf("touch: %w", err)
					}
					if _, err := db.TransitionSandbox(ctx, team.ID, sb.ID, []wrenn.SandboxStatus{wrenn.StatusPending}, wrenn.StatusRunning, at(time.Second)); err != nil {
						errs <- fmt.Errorf("transition: %w", err)
					}
					if _, err := db.ListSandboxes(ctx, team.ID); err != nil {
						errs <- fmt.Errorf("list: %w", err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		running, err := db.SandboxesByStatus(ctx, wrenn.StatusRunning)
		mustNoError(t, "sandboxes by status", err)
		if len(running) != workers*each {
			t.Errorf("%d running sandboxes, want %d", len(running), workers*each)
		}
	})
}

// TestContextCanceled checks that a canceled context stops a query and the
// error is not mistaken for a domain error.
func TestContextCanceled(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := db.ListSandboxes(ctx, "team-x")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
	})
}
