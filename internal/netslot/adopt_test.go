package netslot

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAdoptAndSweep simulates a host agent that dies with one sandbox
// running and two slots in its pool, and the agent that starts after it.
func TestAdoptAndSweep(t *testing.T) {
	requireIsolatedRoot(t)
	ctx := context.Background()
	c := testConfig(t)
	c.PoolSize = 2

	// The first agent: one sandbox, whose "VM" keeps its TAP open throughout.
	m1, err := NewManager(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	live, err := m1.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := MustGuest(t, live)
	srv := MustServe(t, g.do, "guest", "0.0.0.0:0")
	waitFor(t, "the first pool", func() bool { return m1.Stats().Ready == 2 })
	var orphans []int
	for _, s := range m1.ready {
		orphans = append(orphans, s.Index)
	}
	// It crashes: its filler stops, nothing is torn down.
	m1.stopFill()
	<-m1.fillDone

	// A namespace whose veth is gone cannot be adopted, only swept.
	broken := m1.l.slot(orphans[1])
	if err := deleteLink(broken.HostVeth); err != nil {
		t.Fatal(err)
	}

	// The second agent.
	m2 := MustManager(t, c)
	if st := m2.Stats(); st.Foreign != 3 {
		t.Errorf("new manager sees %+v, want 3 foreign (1 live, 2 orphans)", st)
	}
	waitFor(t, "the second pool", func() bool { return m2.Stats().Ready == 2 })
	for _, s := range m2.ready {
		if s.Index == live.Index || slices.Contains(orphans, s.Index) {
			t.Errorf("new pool built over index %d of the previous run", s.Index)
		}
	}

	adopted, err := m2.Adopt(ctx, live.Index)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(adopted, live) {
		t.Errorf("adopted %+v, want %+v", adopted, live)
	}
	if got, err := dial(hostDo, netip.AddrPortFrom(adopted.HostIP, srv.Port()), 5*time.Second); err != nil || !strings.HasPrefix(got, "guest ") {
		t.Errorf("host to the adopted sandbox: %q, %v", got, err)
	}
	if _, err := m2.Adopt(ctx, live.Index); !errors.Is(err, ErrBusy) {
		t.Errorf("second adopt: %v, want ErrBusy", err)
	}
	if _, err := m2.Adopt(ctx, broken.Index); err == nil {
		t.Errorf("adopted slot %d without its veth", broken.Index)
	}
	if _, err := m2.Adopt(ctx, 999); err == nil {
		t.Errorf("adopted slot 999, which was never built")
	}

	// The agent knows of its live sandbox and of one more it is still
	// restoring (orphans[0]): Sweep keeps those two and removes the rest.
	if err := m2.Sweep(ctx, []int{live.Index, orphans[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(broken.Path()); !os.IsNotExist(err) {
		t.Errorf("sweep left namespace %s: %v", broken.Namespace, err)
	}
	if err := isNamespace(m2.l.slot(orphans[0]).Path()); err != nil {
		t.Errorf("sweep removed kept slot %d: %v", orphans[0], err)
	}
	if st := m2.Stats(); st != (Stats{Held: 1, Ready: 2, Foreign: 1}) {
		t.Errorf("after sweep %+v, want 1 held, 2 ready, 1 foreign", st)
	}
	if _, err := m2.Adopt(ctx, orphans[0]); err != nil {
		t.Errorf("adopt kept slot %d: %v", orphans[0], err)
	}
	if got, err := dial(hostDo, netip.AddrPortFrom(adopted.HostIP, srv.Port()), 5*time.Second); err != nil {
		t.Errorf("sweep disturbed the live sandbox: %q, %v", got, err)
	}
	g.stop()
	if err := m2.Release(ctx, adopted); err != nil {
		t.Fatal(err)
	}
}
