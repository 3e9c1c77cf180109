package auth

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/clocktest"
)

func TestThrottlePerAccountAndAddress(t *testing.T) {
	clock := clocktest.New(time.Unix(1e9, 0))
	th := NewThrottle(clock.Now)
	// A guesser at one account from one address: five free, then 1 s,
	// 2 s, 4 s...
	for range rulePair.free {
		th.Failed("a@x.com", "10.0.0.9")
	}
	if w := th.Wait("a@x.com", "10.0.0.9"); w != 0 {
		t.Fatalf("wait %s after the free failures", w)
	}
	th.Failed("A@X.com", "10.0.0.9") // the same account, whatever its case
	if w := th.Wait("a@x.com", "10.0.0.9"); w != time.Second {
		t.Fatalf("wait %s, want 1s", w)
	}
	clock.Advance(time.Second)
	th.Failed("a@x.com", "10.0.0.9")
	if w := th.Wait("a@x.com", "10.0.0.9"); w != 2*time.Second {
		t.Fatalf("wait %s, want 2s", w)
	}
	// The same account from another address, and another account from
	// this one, are not held up.
	if w := th.Wait("a@x.com", "10.0.0.10"); w != 0 {
		t.Errorf("another address waits %s", w)
	}
	if w := th.Wait("b@x.com", "10.0.0.9"); w != 0 {
		t.Errorf("another account waits %s", w)
	}
	// Forgotten after a quiet spell.
	clock.Advance(throttleForget + time.Second)
	th.Failed("a@x.com", "10.0.0.9")
	if w := th.Wait("a@x.com", "10.0.0.9"); w != 0 {
		t.Errorf("wait %s after a quiet spell", w)
	}
}

func TestThrottleSparesTheOwner(t *testing.T) {
	clock := clocktest.New(time.Unix(1e9, 0))
	th := NewThrottle(clock.Now)
	th.Succeeded("a@x.com", "192.0.2.1") // the owner's address
	// Guessers spread over many addresses: the account's rule holds them.
	for i := range ruleAccount.free + 3 {
		th.Failed("a@x.com", fmt.Sprintf("203.0.113.%d", i))
	}
	if w := th.Wait("a@x.com", "203.0.113.200"); w == 0 || w > ruleAccount.max {
		t.Errorf("a new address waits %s, want between 0 and %s", w, ruleAccount.max)
	}
	if w := th.Wait("a@x.com", "192.0.2.1"); w != 0 {
		t.Errorf("the owner's address waits %s: strangers locked the owner out", w)
	}
	// However long the attack, an unknown address waits at most a minute.
	for i := range 100 {
		th.Failed("a@x.com", fmt.Sprintf("198.51.100.%d", i))
	}
	if w := th.Wait("a@x.com", "198.51.100.250"); w > ruleAccount.max {
		t.Errorf("a new address waits %s", w)
	}
	// One address trying many accounts is held by the address rule.
	for i := range ruleAddr.free + 1 {
		th.Failed(fmt.Sprintf("u%d@x.com", i), "198.18.0.1")
	}
	if w := th.Wait("someone@x.com", "198.18.0.1"); w == 0 {
		t.Error("an address that tried many accounts is not held up")
	}
}

// Waiters of one key cannot starve another's: keys take turns.
func TestFairSlots(t *testing.T) {
	f := newFairSlots(1)
	ctx := t.Context()
	if err := f.acquire(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	queued := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; {
			f.mu.Lock()
			k := 0
			for _, q := range f.queues {
				k += len(q)
			}
			f.mu.Unlock()
			if k == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d waiters queued, want %d", k, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	wait := func(key string) {
		go func() {
			if err := f.acquire(ctx, key); err == nil {
				got <- key
			}
		}()
	}
	for i := range 5 {
		wait("flood")
		queued(i + 1)
	}
	wait("user")
	queued(6)
	// A waiter that gives up leaves the queue.
	gone, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- f.acquire(gone, "quitter") }()
	queued(7)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("acquire succeeded after its context ended")
	}
	var order []string
	for range 6 {
		f.release()
		order = append(order, <-got)
	}
	if order[0] != "flood" || order[1] != "user" {
		t.Errorf("order %v: the user's login waited behind the whole flood", order)
	}
	f.release()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.free != 1 || len(f.queues) != 0 || len(f.turns) != 0 {
		t.Errorf("after every release: free %d, queues %v, turns %v", f.free, f.queues, f.turns)
	}
}
