package fleet_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/fleet"
)

// TestRouter: the router reaches a joined host's agent over the link and
// keeps its client; a host that is unreachable, revoked or gone is an
// EHostAgent that says so at once; a host back online is reached again,
// and one that registered again at another address is dialled there.
func TestRouter(t *testing.T) {
	f := newLinkFixture(t)
	ctx := t.Context()
	a := f.joined(t)
	dials := 0
	r := fleet.NewRouter(f.link, slog.New(slog.NewTextHandler(io.Discard, nil)), func(ctx context.Context, _ string, c *agentrpc.Client) error {
		dials++
		_, err := c.Info(ctx)
		return err
	})
	list := func() error {
		t.Helper()
		ag, err := r.Client(ctx, a.hostID)
		if err != nil {
			return err
		}
		got, err := ag.ListSandboxes(ctx)
		if err != nil || len(got) != 1 || got[0].ID != "sb-1" {
			t.Fatalf("the agent answered %v, %v", got, err)
		}
		return nil
	}
	wantRefused := func(what, msg string) {
		t.Helper()
		start := time.Now()
		err := list()
		if wrenn.ErrorCode(err) != wrenn.EHostAgent || !strings.Contains(wrenn.ErrorMessage(err), msg) {
			t.Fatalf("%s: %v, want EHostAgent saying %q", what, err, msg)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("%s: refused after %v", what, took)
		}
	}
	for range 3 {
		if err := list(); err != nil {
			t.Fatal(err)
		}
	}
	if dials != 1 {
		t.Fatalf("dialled %d times for three calls, want once", dials)
	}

	// Silent past DeadAfter: unreachable; a heartbeat brings it back.
	f.clock.Add(11 * time.Second)
	if ids, err := f.link.CheckHeartbeats(ctx); err != nil || len(ids) != 1 {
		t.Fatalf("heartbeat check: %v, %v", ids, err)
	}
	wantRefused("unreachable", "is unreachable")
	if err := f.fleetClient(t, a.cert).HostHeartbeat(ctx, a.hostID); err != nil {
		t.Fatal(err)
	}
	if err := list(); err != nil {
		t.Fatalf("back online: %v", err)
	}

	// Revoked: pending until it joins again, at a new address.
	if _, err := f.svc.Revoke(ctx, f.admin, a.hostID); err != nil {
		t.Fatal(err)
	}
	wantRefused("revoked", "is pending, not online")
	_, token, err := f.svc.RegenerateToken(ctx, f.admin, a.hostID)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, creds, err := f.register(t, token, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	serveAgentOn(t, ln, creds.cert, creds.roots)
	if err := list(); err != nil {
		t.Fatalf("joined again: %v", err)
	}
	if dials != 2 {
		t.Fatalf("dialled %d times, want again at the new address", dials)
	}

	if _, err := r.Agent(ctx, "host-nope"); wrenn.ErrorCode(err) != wrenn.EHostAgent || !strings.Contains(wrenn.ErrorMessage(err), "no longer exists") {
		t.Fatalf("an unknown host: %v", err)
	}
}
