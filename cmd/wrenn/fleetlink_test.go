package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/lease"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// TestJoinRenew runs the agent's side of the link against a real fleet
// listener (startFleet): join with a pinned CA, credentials kept 0600 and
// read back, a heartbeat, and a renewal that replaces them.
func TestJoinRenew(t *testing.T) {
	db := storetest.MustOpen(t, storetest.Engines(t)[0])
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(t.Context())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	hosts := fleet.New(fleet.Config{Hosts: db, Roles: db, Now: time.Now, Logger: log})
	_, stop, err := startFleet(ctx, fleetConfig{Listen: addr}, db, hosts, lease.New(lease.Config{Store: db, Logger: log}), time.Now, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); stop() })

	u := &wrenn.User{ID: wrenn.NewID(wrenn.PrefixUser), Email: "a@example.com", PasswordHash: "h", CreatedAt: time.Now()}
	if err := db.CreateAccount(ctx, u, &wrenn.Team{ID: wrenn.NewID(wrenn.PrefixTeam), Name: "a", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	h, token, err := hosts.Create(ctx, fleet.Caller{UserID: u.ID}, fleet.CreateRequest{Type: wrenn.HostRegular})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := fleet.LoadCA(ctx, db, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	paths := hostLayout(t.TempDir())
	dir := fleetDir(paths)
	url := "https://" + addr
	if _, err := join(ctx, dir, joinConfig{URLs: []string{url}, Token: token, CASHA256: strings.Repeat("0", 64), Advertise: "127.0.0.1:7070"}, paths, log); err == nil ||
		!strings.Contains(err.Error(), "pinned") {
		t.Fatalf("join with another CA's pin: %v", err)
	}
	// Of two control planes, the first unreachable (issue 13: replicas
	// that can fail), the second registers the host; both are kept.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "https://" + dead.Addr().String()
	dead.Close()
	// The agent reports what its admission admits (as WRENN_CPU_OVERCOMMIT
	// sets it, not the default), and the host records it.
	capacity := wrenn.HostCapacity{VCPUs: 24, MemoryMB: 3000}
	creds, err := join(ctx, dir, joinConfig{URLs: []string{deadURL, url}, Token: token, CASHA256: ca.Fingerprint(), Advertise: "127.0.0.1:7070",
		Capacity: func() *wrenn.HostCapacity { return &capacity }}, paths, log)
	if err != nil {
		t.Fatal(err)
	}
	if creds.HostID != h.ID || !hasJoined(paths) {
		t.Fatalf("joined as %s, want %s", creds.HostID, h.ID)
	}
	if got, err := db.GetHost(ctx, h.ID); err != nil || got.Capacity == nil || *got.Capacity != capacity {
		t.Fatalf("registered host's capacity: %+v, %v; want %+v", got.Capacity, err, capacity)
	}
	for _, f := range []string{credKey, credCert, credCA, credHost} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v", f, fi, err)
		}
	}
	loaded, err := loadCredentials(dir)
	if err != nil || loaded.HostID != h.ID || loaded.URL != deadURL || !slices.Equal(loaded.URLs, []string{deadURL, url}) || !loaded.current().Leaf.Equal(creds.current().Leaf) {
		t.Fatalf("credentials read back: %+v, %v", loaded, err)
	}

	c, err := fleetClient(url, loaded.current, loaded.roots, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.HostHeartbeat(ctx, h.ID); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	// A heartbeat that reports no capacity (an agent older than the
	// report) leaves none: placement assumes the default admission.
	if got, err := db.GetHost(ctx, h.ID); err != nil || got.Capacity != nil {
		t.Fatalf("capacity after a heartbeat without one: %+v, %v", got.Capacity, err)
	}
	old := loaded.current().Leaf
	if err := renew(ctx, c, loaded); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if loaded.current().Leaf.Equal(old) {
		t.Fatal("renewal kept the old certificate")
	}
	if err := c.HostHeartbeat(ctx, h.ID); err != nil {
		t.Fatalf("heartbeat with the renewed certificate: %v", err)
	}
	again, err := loadCredentials(dir)
	if err != nil || !again.current().Leaf.Equal(loaded.current().Leaf) {
		t.Fatalf("renewed credentials not saved: %v", err)
	}

	// The heartbeat loop passes over the dead control plane to the live
	// one, and says so; its heartbeats report the capacity (an agent
	// restarted with new settings, which does not register again).
	before, err := db.GetHost(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	var said syncBuffer
	hctx, hcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	restarted := wrenn.HostCapacity{VCPUs: 36, MemoryMB: 4000}
	go func() {
		defer close(done)
		heartbeat(hctx, again, func() *wrenn.HostCapacity { return &restarted }, slog.New(slog.NewTextHandler(&said, nil)))
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err := db.GetHost(ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.LastHeartbeatAt.After(*before.LastHeartbeatAt) {
			if got.Capacity == nil || *got.Capacity != restarted {
				t.Fatalf("capacity after the loop's heartbeat: %+v, want %+v", got.Capacity, restarted)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat reached the live control plane; the agent said:\n%s", said.String())
		}
	}
	// The loop says so once the heartbeat's answer is back, which may be
	// after the live control plane has recorded it.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(said.String(), "heartbeat: failed over to another control plane"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not say it failed over:\n%s", said.String())
		}
	}
	hcancel()
	<-done
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestJoinChecksNetworkFirst: an agent whose network names are wrong
// fails before it registers, so its one-time token is not spent.
func TestJoinChecksNetworkFirst(t *testing.T) {
	var contacted atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		contacted.Store(true)
		http.Error(w, "no", http.StatusTeapot)
	}))
	defer srv.Close()
	t.Setenv(envNetLinkPrefix, "wh1") // letters only
	err := runJoinedAgent(t.Context(), "127.0.0.1:0", joinConfig{URLs: []string{srv.URL}, Token: "wrh_" + strings.Repeat("0", 64)},
		layout.New(t.TempDir()), hostConfig{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "link prefix") {
		t.Fatalf("join with a bad link prefix: %v", err)
	}
	if contacted.Load() {
		t.Fatal("the agent contacted the control plane before checking its network names")
	}
}
