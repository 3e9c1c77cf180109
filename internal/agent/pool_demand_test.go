package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/clocktest"
	"github.com/wrennhq/wrenn/internal/layout"
)

func TestDemandPeak(t *testing.T) {
	start := time.Unix(1_000_000, 0) // on a bucket's edge
	tests := []struct {
		name  string
		at    []time.Duration // creates, after start
		after time.Duration   // when the peak is read
		want  int
	}{
		{"none", nil, 0, 0},
		{"one burst", []time.Duration{0, 1, 2, 3, 4}, time.Second, 5},
		{"a burst across a bucket's edge", []time.Duration{demandBucket - 1, demandBucket - 1, demandBucket, demandBucket + 1}, 15 * time.Second, 4},
		{"spread out", []time.Duration{0, 30 * time.Second, time.Minute, 90 * time.Second}, 2 * time.Minute, 1},
		{"the larger of two bursts", []time.Duration{0, 1, 2, time.Minute, time.Minute + 1}, 2 * time.Minute, 3},
		{"forgotten after the window", []time.Duration{0, 1, 2}, demandWindow + demandBucket, 0},
		{"the later burst outlives the earlier", []time.Duration{0, 1, 2, 4 * time.Minute}, demandWindow + demandBucket, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d demand
			for _, at := range tt.at {
				d.add(start.Add(at))
			}
			if got := d.peak(start.Add(tt.after)); got != tt.want {
				t.Errorf("peak = %d, want %d", got, tt.want)
			}
		})
	}
}

// makingHost makes members in a few milliseconds, each with a run
// directory whose template memory links tmpl's, and counts how many it
// makes at once.
type makingHost struct {
	dir  string
	tmpl layout.TemplateDir
	took time.Duration
	fail atomic.Bool

	mu        sync.Mutex
	now, most int
	made      int
	ended     []*sandbox
}

func newMakingHost(t *testing.T) *makingHost {
	t.Helper()
	h := &makingHost{dir: t.TempDir(), tmpl: layout.TemplateDir(filepath.Join(t.TempDir(), "tmpl")), took: 5 * time.Millisecond}
	if err := os.MkdirAll(h.tmpl.Path(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.tmpl.Memory(), []byte("mem"), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *makingHost) makeMember(ctx context.Context, key poolKey) (*poolMember, error) {
	h.mu.Lock()
	h.now++
	h.most = max(h.most, h.now)
	h.made++
	id := fmt.Sprintf("pool-%d", h.made)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.now--
		h.mu.Unlock()
	}()
	time.Sleep(h.took)
	if h.fail.Load() {
		return nil, errors.New("no room")
	}
	sb := newSandbox(id, layout.SandboxDir(filepath.Join(h.dir, id)), discardLog(), lcPooled)
	if err := os.MkdirAll(sb.dir.Path(), 0o700); err != nil {
		return nil, err
	}
	if err := os.Link(h.tmpl.Memory(), sb.dir.TemplateMemory()); err != nil {
		return nil, err
	}
	return &poolMember{sb: sb, tmpl: h.tmpl}, nil
}

func (h *makingHost) endMember(sb *sandbox) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = append(h.ended, sb)
}

func (h *makingHost) mostAtOnce() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.most
}

func (h *makingHost) madeSoFar() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.made
}

func (h *makingHost) resetMost() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.most = h.now
}

func readyOf(p *pool, key poolKey) (ready, filling int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ready[key]), p.filling[key]
}

// waitReady waits until the pool holds n ready members of key and makes
// none, ticking it.
func waitReady(t *testing.T, p *pool, clock *clocktest.Clock, key poolKey, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		clock.Advance(refillDelay / 4)
		p.tick()
		ready, filling := readyOf(p, key)
		if ready == n && filling == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool: %d ready, %d being made; want %d ready", ready, filling, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// burst claims n members of key at once and checks each create got one
// of its own.
func burst(t *testing.T, p *pool, key poolKey, tmpl layout.TemplateDir, n int) {
	t.Helper()
	got := make([]*poolMember, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = p.claim(context.Background(), key, tmpl, 10*time.Second)
		}()
	}
	wg.Wait()
	seen := map[*poolMember]bool{}
	for i, m := range got {
		if m == nil {
			t.Fatalf("create %d of the burst got no member", i)
		}
		if seen[m] {
			t.Fatalf("two creates got the same member %s", m.sb.id)
		}
		seen[m] = true
	}
}

// TestPoolFollowsDemand: the pool keeps its floor, learns a burst's size,
// makes members for a burst beyond it Refills at a time and refills to
// the burst's size BackgroundRefills at a time; once the burst is out of
// the window its members beyond the floor end.
func TestPoolFollowsDemand(t *testing.T) {
	clock := clocktest.New(time.Unix(1_000_000, 0))
	host := newMakingHost(t)
	p := newPool(PoolConfig{Floor: 1, Max: 16, Refills: 3, BackgroundRefills: 1}, discardLog(), host, clock.Now)
	t.Cleanup(p.close)
	key := poolKey{name: "minimal"}
	p.start([]poolKey{key})
	waitReady(t, p, clock, key, 1) // the floor

	host.resetMost()
	burst(t, p, key, host.tmpl, 10)
	if most := host.mostAtOnce(); most > 3 {
		t.Errorf("made %d members at once for a burst, Refills is 3", most)
	}
	host.resetMost()
	waitReady(t, p, clock, key, 10) // it learnt the burst
	if most := host.mostAtOnce(); most > 1 {
		t.Errorf("refilled %d members at once, BackgroundRefills is 1", most)
	}

	// The next burst like it, a minute on, finds every member ready, and
	// no refill starts until refillDelay after it.
	clock.Advance(time.Minute)
	made := host.madeSoFar()
	burst(t, p, key, host.tmpl, 10)
	p.tick()
	if n := host.madeSoFar() - made; n != 0 {
		t.Errorf("%d members made during a burst the pool had learnt", n)
	}
	waitReady(t, p, clock, key, 10)

	// Quiet for the window: the members beyond the floor end.
	clock.Advance(demandWindow + 2*demandBucket)
	ended := len(host.ended)
	waitReady(t, p, clock, key, 1)
	if got := len(host.endedSince(ended)); got != 9 {
		t.Errorf("ended %d idle members, want 9", got)
	}
}

func (h *makingHost) endedSince(n int) []*sandbox {
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		got := len(h.ended)
		h.mu.Unlock()
		if got >= n+9 || time.Now().After(deadline) {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.ended[n:]
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPoolBudget: refills stop at the pool's memory budget and at Max;
// makes for waiting creates do not.
func TestPoolBudget(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  PoolConfig
		want int
	}{
		{"memory", PoolConfig{Floor: 1, MaxMemoryMB: 3 * WarmMemoryMB, Refills: 2}, 3},
		{"count", PoolConfig{Floor: 1, Max: 4, Refills: 2}, 4},
		{"ceiling above the burst", PoolConfig{Floor: 1, Max: 100, Refills: 2}, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(time.Unix(1_000_000, 0))
			host := newMakingHost(t)
			p := newPool(tt.cfg, discardLog(), host, clock.Now)
			t.Cleanup(p.close)
			key := poolKey{name: "minimal"}
			p.start([]poolKey{key})
			waitReady(t, p, clock, key, 1)
			burst(t, p, key, host.tmpl, 6)
			waitReady(t, p, clock, key, tt.want)
		})
	}
}

// TestPoolWaitersWhenMakesFail: a create waiting for a member whose make
// fails is told at once, and creates in the retry interval do not wait.
func TestPoolWaitersWhenMakesFail(t *testing.T) {
	clock := clocktest.New(time.Unix(1_000_000, 0))
	host := newMakingHost(t)
	host.fail.Store(true)
	p := newPool(PoolConfig{Floor: 1, Refills: 2}, discardLog(), host, clock.Now)
	t.Cleanup(p.close)
	key := poolKey{name: "minimal"}
	start := time.Now()
	if m := p.claim(context.Background(), key, host.tmpl, time.Minute); m != nil {
		t.Fatal("a member from a host that makes none")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the waiter learnt of the failure after %s", took)
	}
	made := host.madeSoFar()
	if m := p.claim(context.Background(), key, host.tmpl, time.Minute); m != nil || host.madeSoFar() != made {
		t.Errorf("a create in the retry interval waited for a make (%d made)", host.madeSoFar()-made)
	}
	// After the interval, members are made again.
	host.fail.Store(false)
	clock.Advance(poolRetry)
	if m := p.claim(context.Background(), key, host.tmpl, time.Minute); m == nil {
		t.Error("no member after the retry interval")
	}
}

// TestPoolHoldsRefillsWhileCreatesRestore: no refill starts while a create
// starts a VM of its own; it starts when that create is done.
func TestPoolHoldsRefillsWhileCreatesRestore(t *testing.T) {
	clock := clocktest.New(time.Unix(1_000_000, 0))
	host := newMakingHost(t)
	p := newPool(PoolConfig{Floor: 2}, discardLog(), host, clock.Now)
	t.Cleanup(p.close)
	key := poolKey{name: "minimal"}
	done := p.restore()
	p.start([]poolKey{key})
	p.tick()
	if ready, filling := readyOf(p, key); ready+filling != 0 {
		t.Fatalf("refilled while a create restores: %d ready, %d being made", ready, filling)
	}
	done()
	waitReady(t, p, clock, key, 2)
}

// TestPoolWaiterLeaves: a create that stops waiting leaves no waiter
// behind, and the member made for it stays in the pool.
func TestPoolWaiterLeaves(t *testing.T) {
	clock := clocktest.New(time.Unix(1_000_000, 0))
	host := newMakingHost(t)
	host.took = 200 * time.Millisecond
	p := newPool(PoolConfig{Floor: 1}, discardLog(), host, clock.Now)
	t.Cleanup(p.close)
	key := poolKey{name: "minimal"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if m := p.claim(ctx, key, host.tmpl, time.Minute); m != nil {
		t.Fatal("got a member before it was made")
	}
	p.mu.Lock()
	n := len(p.waiters[key])
	p.mu.Unlock()
	if n != 0 {
		t.Errorf("%d waiters left behind", n)
	}
	p.start([]poolKey{key})
	waitReady(t, p, clock, key, 1)
}

// TestPoolYieldsSurplusFirst: to make room on a full host the pool ends a
// member beyond its template's target before an older one it needs.
func TestPoolYieldsSurplusFirst(t *testing.T) {
	p, host := testPool(t) // floor 1
	dir := t.TempDir()
	now := time.Now()
	base := poolKey{name: "minimal"}
	p.mu.Lock()
	p.bases[base] = true
	p.mu.Unlock()
	needed := addMember(t, p, dir, base, now.Add(-time.Hour)) // the floor: oldest, but needed
	surplus := addMember(t, p, dir, poolKey{team: "team-a", name: "quiet"}, now)
	if !p.yield() {
		t.Fatal("nothing yielded")
	}
	if !host.isEnded(surplus.sb) || host.isEnded(needed.sb) {
		t.Errorf("yield ended the member its template needs")
	}
	if !p.yield() || !host.isEnded(needed.sb) {
		t.Error("with no surplus left, the oldest member did not yield")
	}
	if p.yield() {
		t.Error("yielded from an empty pool")
	}
}
