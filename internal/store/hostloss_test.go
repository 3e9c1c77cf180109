package store_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
)

// TestHostLossSandboxes (issue 13, host loss): only the running sandboxes
// of unreachable hosts go missing, each once however many control planes
// mark them at once; a missing sandbox still counts against its team's
// quota and its host's load; after the grace, missing ones become error,
// each once, and no longer count, and so do pending ones on the lost host
// (a create whose control plane died with it).
func TestHostLossSandboxes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		u, team := mustAccount(t, db, "a@example.com", base)
		host := func(status wrenn.HostStatus) string {
			h := &wrenn.Host{ID: wrenn.NewID(wrenn.PrefixHost), Type: wrenn.HostRegular, Status: status, Address: "10.0.0.5:7070",
				CreatedBy: u.ID, CreatedAt: base, UpdatedAt: base}
			mustNoError(t, "create host", db.CreateHost(ctx, h))
			return h.ID
		}
		lost, alive := host(wrenn.HostUnreachable), host(wrenn.HostOnline)
		on := func(hostID string, status wrenn.SandboxStatus) *wrenn.Sandbox {
			sb := mustSandbox(t, db, team.ID, status, base)
			sb.HostID = hostID
			mustNoError(t, "place sandbox", db.UpdateSandbox(ctx, sb))
			return sb
		}
		lostRunning := []*wrenn.Sandbox{on(lost, wrenn.StatusRunning), on(lost, wrenn.StatusRunning), on(lost, wrenn.StatusRunning)}
		// Pending ones, last written at 90 s.
		pending := func(hostID string) string {
			sb := on(hostID, wrenn.StatusPending)
			sb.LastUpdated = at(90 * time.Second)
			mustNoError(t, "update sandbox", db.UpdateSandbox(ctx, sb))
			return sb.ID
		}
		lostPending, alivePending := pending(lost), pending(alive)
		others := map[string]wrenn.SandboxStatus{
			on(lost, wrenn.StatusPaused).ID:      wrenn.StatusPaused,
			lostPending:                          wrenn.StatusPending,
			alivePending:                         wrenn.StatusPending,
			on(lost, wrenn.StatusError).ID:       wrenn.StatusError,
			on(alive, wrenn.StatusRunning).ID:    wrenn.StatusRunning,
			on("", wrenn.StatusRunning).ID:       wrenn.StatusRunning, // the server's own agent's
			on("host-x", wrenn.StatusRunning).ID: wrenn.StatusRunning, // a host no row has
		}
		usage, err := db.TeamUsage(ctx, team.ID)
		mustNoError(t, "usage", err)

		// Four control planes at once: each sandbox is moved by one.
		var mu sync.Mutex
		var moved []string
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				sbs, err := db.MarkSandboxesMissing(ctx, at(time.Minute))
				mustNoError(t, "mark missing", err)
				mu.Lock()
				defer mu.Unlock()
				for _, sb := range sbs {
					if sb.Status != wrenn.StatusMissing || !sb.LastUpdated.Equal(at(time.Minute).Truncate(time.Microsecond)) {
						t.Errorf("MarkSandboxesMissing returned %+v", sb)
					}
					moved = append(moved, sb.ID)
				}
			})
		}
		wg.Wait()
		slices.Sort(moved)
		var want []string
		for _, sb := range lostRunning {
			want = append(want, sb.ID)
		}
		slices.Sort(want)
		if !slices.Equal(moved, want) {
			t.Fatalf("marked missing %v, want each of %v once", moved, want)
		}
		for id, st := range others {
			got, err := db.GetSandbox(ctx, team.ID, id)
			mustNoError(t, "get", err)
			if got.Status != st {
				t.Errorf("%s (%s) became %s", id, st, got.Status)
			}
		}
		after, err := db.TeamUsage(ctx, team.ID)
		mustNoError(t, "usage", err)
		mustEqual(t, "usage with missing sandboxes", after, usage)
		loads, err := db.HostLoads(ctx)
		mustNoError(t, "loads", err)
		if loads[lost].Sandboxes != 4 { // three missing, one pending
			t.Errorf("the lost host's load is %+v, want its missing and pending sandboxes", loads[lost])
		}

		// One comes back (the reconciler's move); the rest are given up
		// after the grace, each once.
		_, err = db.TransitionSandbox(ctx, team.ID, lostRunning[0].ID, []wrenn.SandboxStatus{wrenn.StatusMissing}, wrenn.StatusRunning, at(2*time.Minute))
		mustNoError(t, "revive", err)
		failed, err := db.FailMissingSandboxes(ctx, at(time.Minute), at(3*time.Minute))
		mustNoError(t, "fail missing, within the grace", err)
		if len(failed) != 0 {
			t.Fatalf("failed within the grace: %v", failed)
		}
		moved = nil
		for range 3 {
			wg.Go(func() {
				sbs, err := db.FailMissingSandboxes(ctx, at(2*time.Minute), at(4*time.Minute))
				mustNoError(t, "fail missing", err)
				mu.Lock()
				defer mu.Unlock()
				for _, sb := range sbs {
					if sb.Status != wrenn.StatusError {
						t.Errorf("FailMissingSandboxes returned %+v", sb)
					}
					moved = append(moved, sb.ID)
				}
			})
		}
		wg.Wait()
		slices.Sort(moved)
		// And the lost host's pending one, not the other host's.
		want = []string{lostRunning[1].ID, lostRunning[2].ID, lostPending}
		slices.Sort(want)
		if !slices.Equal(moved, want) {
			t.Fatalf("gave up %v, want each of %v once", moved, want)
		}
		after, err = db.TeamUsage(ctx, team.ID)
		mustNoError(t, "usage", err)
		if after.Sandboxes != usage.Sandboxes-3 || after.VCPUs != usage.VCPUs-6 {
			t.Errorf("usage after the give-up %+v, want three sandboxes fewer than %+v", after, usage)
		}
	})
}
