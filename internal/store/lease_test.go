package store_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/store"
)

// TestLeases: on PostgreSQL a lease has one holder until it expires or is
// released, renewing keeps it, and of holders racing for it one wins; on
// SQLite (one process) it is always taken.
func TestLeases(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		pg := db.Engine() == store.EnginePostgres
		const ttl = 300 * time.Millisecond
		ok, err := db.AcquireLease(ctx, "job", "a", ttl)
		mustNoError(t, "a acquires", err)
		mustEqual(t, "a acquires", ok, true)
		ok, err = db.AcquireLease(ctx, "job", "b", ttl)
		mustNoError(t, "b acquires", err)
		mustEqual(t, "b acquires a's lease", ok, !pg)
		if !pg {
			return
		}
		ok, err = db.AcquireLease(ctx, "other", "b", time.Minute)
		mustNoError(t, "b acquires other", err)
		mustEqual(t, "b acquires another lease", ok, true)
		// a renews for longer than ttl: b never gets it.
		for range 4 {
			time.Sleep(ttl / 3)
			ok, err = db.AcquireLease(ctx, "job", "a", ttl)
			mustNoError(t, "a renews", err)
			mustEqual(t, "a renews", ok, true)
			ok, err = db.AcquireLease(ctx, "job", "b", ttl)
			mustNoError(t, "b acquires", err)
			mustEqual(t, "b acquires a's renewed lease", ok, false)
		}
		got, err := db.LeaseHolders(ctx)
		mustNoError(t, "holders", err)
		mustEqual(t, "holders", got, map[string]string{"job": "a", "other": "b"})
		// a stops renewing: once expired, b takes it, and a's renewal fails.
		time.Sleep(ttl + 50*time.Millisecond)
		ok, err = db.AcquireLease(ctx, "job", "b", ttl)
		mustNoError(t, "b acquires", err)
		mustEqual(t, "b acquires a's expired lease", ok, true)
		ok, err = db.AcquireLease(ctx, "job", "a", ttl)
		mustNoError(t, "a renews", err)
		mustEqual(t, "a renews a lease b took", ok, false)
		// Release: only the holder's counts, and frees it at once.
		mustNoError(t, "a releases", db.ReleaseLease(ctx, "job", "a"))
		ok, err = db.AcquireLease(ctx, "job", "c", ttl)
		mustNoError(t, "c acquires", err)
		mustEqual(t, "c acquires b's lease after a's release", ok, false)
		mustNoError(t, "b releases", db.ReleaseLease(ctx, "job", "b"))
		ok, err = db.AcquireLease(ctx, "job", "c", ttl)
		mustNoError(t, "c acquires", err)
		mustEqual(t, "c acquires the released lease", ok, true)

		// Racing holders: one wins.
		var won atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				ok, err := db.AcquireLease(ctx, "race", fmt.Sprint("h", i), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		mustEqual(t, "holders that won the race", won.Load(), int32(1))
	})
}
