package agent

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/clocktest"
	"github.com/wrennhq/wrenn/internal/envd"
)

// freezable is a guest's end of the agent channel whose writes can be
// held, as a guest that stops answering holds its replies.
type freezable struct {
	net.Conn
	mu sync.Mutex // held: frozen
}

func (f *freezable) Write(b []byte) (int, error) {
	f.mu.Lock()
	f.mu.Unlock() //nolint:staticcheck // waiting for the thaw, not guarding anything
	return f.Conn.Write(b)
}

type fakeHealthHost struct {
	sbs    []*sandbox
	failed []*sandbox
}

func (f *fakeHealthHost) all() []*sandbox { return f.sbs }
func (f *fakeHealthHost) fail(sb *sandbox) {
	f.failed = append(f.failed, sb)
	sb.move(lcFailed)
}
func (f *fakeHealthHost) reconnect(context.Context, *sandbox, *machine) error {
	return errors.New("no new session")
}

// A guest that stops answering makes its sandbox unresponsive, answering
// again makes it running, and silence past the grace period fails it.
func TestHealthCheck(t *testing.T) {
	hostEnd, guestEnd := net.Pipe()
	guest := &freezable{Conn: guestEnd}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = envd.Serve(ctx, guest, nil)
	}()
	client, err := envd.NewClient(hostEnd, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		cancel()
		<-served
	})

	id := wrenn.NewID(wrenn.PrefixSandbox)
	sb := newSandbox(id, "", discardLog(), lcRunning)
	sb.mach = &machine{envd: client}
	host := &fakeHealthHost{sbs: []*sandbox{sb}}
	clock := clocktest.New(time.Unix(1e9, 0))
	h := &health{c: HealthConfig{Timeout: 200 * time.Millisecond, Grace: 30 * time.Second}.withDefaults(), host: host, now: clock.Now}

	step := func(want lifecycle) {
		t.Helper()
		h.check(t.Context(), sb)
		if got := sb.lifecycle(); got != want {
			t.Fatalf("lifecycle %s, want %s", got, want)
		}
	}
	step(lcRunning)
	guest.mu.Lock()
	step(lcUnresponsive)
	clock.Advance(20 * time.Second)
	step(lcUnresponsive) // within the grace period
	guest.mu.Unlock()
	step(lcRunning)
	guest.mu.Lock()
	step(lcUnresponsive)
	clock.Advance(31 * time.Second)
	step(lcFailed)
	guest.mu.Unlock()
	if len(host.failed) != 1 {
		t.Errorf("failed %d times", len(host.failed))
	}
	// A failed sandbox is no longer checked.
	h.round(t.Context())
	if len(host.failed) != 1 {
		t.Errorf("checked after it failed")
	}
}
