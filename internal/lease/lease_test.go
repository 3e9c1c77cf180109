package lease_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/lease"
	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// job counts the holders running it at once, and which ran it.
type job struct {
	mu      sync.Mutex
	running map[string]bool
	most    int
	ran     []string
}

func (j *job) run(holder string) func(ctx context.Context) {
	return func(ctx context.Context) {
		j.mu.Lock()
		j.running[holder] = true
		j.most = max(j.most, len(j.running))
		j.ran = append(j.ran, holder)
		j.mu.Unlock()
		<-ctx.Done()
		j.mu.Lock()
		delete(j.running, holder)
		j.mu.Unlock()
	}
}

func (j *job) now() (running []string, most int, ran []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for h := range j.running {
		running = append(running, h)
	}
	return running, j.most, append([]string(nil), j.ran...)
}

// dying is a store that a holder stops reaching once killed, as a
// replica that died (or lost its database) does.
type dying struct {
	lease.Store
	dead atomic.Bool
}

func (d *dying) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if d.dead.Load() {
		return false, errors.New("the database is gone")
	}
	return d.Store.AcquireLease(ctx, name, holder, ttl)
}

func (d *dying) ReleaseLease(ctx context.Context, name, holder string) error {
	if d.dead.Load() {
		return errors.New("the database is gone")
	}
	return d.Store.ReleaseLease(ctx, name, holder)
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestRunOnce: on PostgreSQL, of three replicas running one job under a
// lease, one runs it; when it stops (its context ends) another takes over
// at once, and when it dies (stops reaching the database without
// releasing) another takes over within TTL*4/3 and never while the dead
// one still runs it.
func TestRunOnce(t *testing.T) {
	if !hasPostgres(t) {
		t.Skip("needs PostgreSQL (WRENN_TEST_DATABASE_URL)")
	}
	db := storetest.MustOpen(t, store.EnginePostgres)
	const ttl = 600 * time.Millisecond
	j := &job{running: map[string]bool{}}
	stores := map[string]*dying{}
	cancels := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	for _, h := range []string{"a", "b", "c"} {
		st := &dying{Store: db}
		stores[h] = st
		ctx, cancel := context.WithCancel(t.Context())
		cancels[h] = cancel
		l := lease.New(lease.Config{Store: st, Holder: h, TTL: ttl, Logger: discard})
		wg.Go(func() { l.Run(ctx, "job", j.run(h)) })
	}
	t.Cleanup(func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	})
	one := func() string {
		running, _, _ := j.now()
		if len(running) == 1 {
			return running[0]
		}
		return ""
	}
	waitFor(t, "one holder runs the job", 2*time.Second, func() bool { return one() != "" })
	first := one()
	time.Sleep(2 * ttl) // renewals keep it there
	if got := one(); got != first {
		t.Fatalf("running %q after renewals, want %q", got, first)
	}
	// A replica that stops: its release hands the job over at once.
	cancels[first]()
	took := waitFor(t, "another holder takes over a released lease", ttl, func() bool { h := one(); return h != "" && h != first })
	t.Logf("released: taken over in %v", took)
	second := one()
	// A replica that dies: taken over once the lease expires.
	stores[second].dead.Store(true)
	took = waitFor(t, "another holder takes over a dead one's lease", ttl*4/3+ttl/2, func() bool {
		h := one()
		return h != "" && h != second && h != first
	})
	t.Logf("died: taken over in %v", took)
	if _, most, ran := j.now(); most != 1 {
		t.Fatalf("at most %d holders ran the job at once (runs %v), want 1", most, ran)
	}
}

// TestSQLiteAlwaysHeld: on SQLite a lease is taken at once, even one a
// run of the process that died left behind.
func TestSQLiteAlwaysHeld(t *testing.T) {
	db := storetest.MustOpen(t, store.EngineSQLite)
	if ok, err := db.AcquireLease(t.Context(), "job", "died", time.Hour); err != nil || !ok {
		t.Fatalf("acquire = %v, %v", ok, err)
	}
	j := &job{running: map[string]bool{}}
	ctx, cancel := context.WithCancel(t.Context())
	l := lease.New(lease.Config{Store: db, TTL: time.Hour, Logger: discard})
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx, "job", j.run("me")) }()
	waitFor(t, "the job runs", time.Second, func() bool { r, _, _ := j.now(); return len(r) == 1 })
	cancel()
	<-done
	if got, err := db.LeaseHolders(t.Context()); err != nil || len(got) != 0 {
		t.Fatalf("leases after Run ended = %v, %v; want none", got, err)
	}
}

func hasPostgres(t *testing.T) bool {
	for _, e := range storetest.Engines(t) {
		if e == store.EnginePostgres {
			return true
		}
	}
	return false
}
