package fleet_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/fleet"
)

// TestHostLoss: in the heartbeat check's pass that makes a host
// unreachable its running sandboxes become missing, and only those (not
// its paused ones, not another host's); a host back in time leaves them to
// its reconciler; missing for the grace, they are given up (error). Two
// control planes checking at once move each sandbox once.
func TestHostLoss(t *testing.T) {
	f := newLinkFixture(t)
	ctx := t.Context()
	ca, err := fleet.LoadCA(ctx, f.db, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	links := make([]*fleet.Link, 2) // two control planes on one store
	for i := range links {
		links[i] = fleet.NewLink(fleet.LinkConfig{Store: f.db, Registry: f.svc, CA: ca, Now: f.clock.Now, Logger: quiet,
			DeadAfter: 10 * time.Second, MissingGrace: time.Minute})
	}
	if links[0].MissingGrace() != time.Minute || fleet.NewLink(fleet.LinkConfig{}).MissingGrace() != fleet.DefaultMissingGrace {
		t.Fatal("MissingGrace is not as configured")
	}
	lost, kept := f.joined(t), f.joined(t)
	keep := f.fleetClient(t, kept.cert)
	lostClient := f.fleetClient(t, lost.cert)
	mk := func(hostID string, status wrenn.SandboxStatus) string {
		now := f.clock.Now()
		sb := &wrenn.Sandbox{ID: wrenn.NewID(wrenn.PrefixSandbox), TeamID: f.owner.TeamID, Template: "minimal", Status: status,
			VCPUs: 1, MemoryMB: 512, HostID: hostID, CreatedAt: now, LastUpdated: now}
		if err := f.db.CreateSandbox(ctx, sb); err != nil {
			t.Fatal(err)
		}
		return sb.ID
	}
	running, paused, elsewhere := mk(lost.hostID, wrenn.StatusRunning), mk(lost.hostID, wrenn.StatusPaused), mk(kept.hostID, wrenn.StatusRunning)
	want := func(when string, st map[string]wrenn.SandboxStatus) {
		t.Helper()
		for id, w := range st {
			sb, err := f.db.GetSandbox(ctx, f.owner.TeamID, id)
			if err != nil || sb.Status != w {
				t.Fatalf("%s: %s is %v (%v), want %s", when, id, sb.Status, err, w)
			}
		}
	}
	check := func() {
		t.Helper()
		done := make(chan error, len(links))
		for _, l := range links {
			go func() { _, err := l.CheckHeartbeats(ctx); done <- err }()
		}
		for range links {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	// silence lets d pass with only the other host heartbeating; both
	// heartbeat every 5 s in beating's.
	silence := func(d time.Duration) {
		t.Helper()
		f.clock.Add(d)
		if err := keep.HostHeartbeat(ctx, kept.hostID); err != nil {
			t.Fatal(err)
		}
		check()
	}
	beating := func(d time.Duration) {
		t.Helper()
		for end := f.clock.Now().Add(d); f.clock.Now().Before(end); {
			if err := lostClient.HostHeartbeat(ctx, lost.hostID); err != nil {
				t.Fatal(err)
			}
			silence(5 * time.Second)
		}
	}

	silence(10 * time.Second)
	want("silent for DeadAfter", map[string]wrenn.SandboxStatus{running: wrenn.StatusRunning, paused: wrenn.StatusPaused})
	silence(time.Millisecond)
	want("unreachable", map[string]wrenn.SandboxStatus{running: wrenn.StatusMissing, paused: wrenn.StatusPaused, elsewhere: wrenn.StatusRunning})

	// Back within the grace: online, and still missing until its
	// reconciler has seen the host hold it (internal/control); then no
	// pass moves it again.
	if err := lostClient.HostHeartbeat(ctx, lost.hostID); err != nil {
		t.Fatal(err)
	}
	silence(time.Second)
	want("host back", map[string]wrenn.SandboxStatus{running: wrenn.StatusMissing})
	if _, err := f.db.TransitionSandbox(ctx, f.owner.TeamID, running, []wrenn.SandboxStatus{wrenn.StatusMissing}, wrenn.StatusRunning, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	beating(2 * time.Minute)
	want("found again", map[string]wrenn.SandboxStatus{running: wrenn.StatusRunning})

	// Lost for good: missing, then error once missing for the grace.
	if err := lostClient.HostHeartbeat(ctx, lost.hostID); err != nil {
		t.Fatal(err)
	}
	silence(11 * time.Second)
	want("lost again", map[string]wrenn.SandboxStatus{running: wrenn.StatusMissing})
	silence(time.Minute - time.Second)
	want("within the grace", map[string]wrenn.SandboxStatus{running: wrenn.StatusMissing})
	silence(2 * time.Second)
	want("past the grace", map[string]wrenn.SandboxStatus{running: wrenn.StatusError, paused: wrenn.StatusPaused, elsewhere: wrenn.StatusRunning})
}
