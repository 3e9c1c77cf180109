package auth

import (
	"context"
	"strings"
	"sync"
	"time"
)

// clientKey is the context key of the caller's network address.
type clientKey struct{}

// WithClient returns ctx carrying the caller's network address (without
// its port), which login throttling and the password hasher's fair queue
// go by.
func WithClient(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientKey{}, addr)
}

func clientOf(ctx context.Context) string {
	addr, _ := ctx.Value(clientKey{}).(string)
	return addr
}

// A throttle rule: a key's first free failures cost nothing; each one
// after earns a wait before the key may try again, doubling from base up
// to max. A key's failures are forgotten after throttleForget without one.
type throttleRule struct {
	free      int
	base, max time.Duration
}

var (
	// Per client address, whichever accounts it tries: generous, since
	// many users may share an address behind a NAT.
	ruleAddr = throttleRule{free: 20, base: time.Second, max: 15 * time.Minute}
	// Per account and address: a guesser at one account.
	rulePair = throttleRule{free: 5, base: time.Second, max: 15 * time.Minute}
	// Per account, for addresses that have not logged into it lately:
	// guessers spread over many addresses. Bounded low, and addresses the
	// account has logged in from are spared, so that strangers cannot
	// lock its owner out.
	ruleAccount = throttleRule{free: 10, base: time.Second, max: time.Minute}
)

const (
	throttleForget = 15 * time.Minute
	// trustFor is how long a successful login makes its address known to
	// the account.
	trustFor = 30 * 24 * time.Hour
	// maxThrottleKeys bounds the throttle's memory; past it, old entries
	// are swept and, failing that, new keys go untracked.
	maxThrottleKeys = 100_000
)

// Throttle slows failed logins per client address, per account and
// address, and per account for addresses it does not know. It is safe for
// concurrent use; its state is this process's alone.
type Throttle struct {
	now func() time.Time

	mu      sync.Mutex
	strikes map[string]*strike
	known   map[string]time.Time // account + "\x00" + address → last success
}

type strike struct {
	n     int
	last  time.Time // of the last failure
	until time.Time // no attempt before this
}

// NewThrottle returns a Throttle on the clock now.
func NewThrottle(now func() time.Time) *Throttle {
	return &Throttle{now: now, strikes: make(map[string]*strike), known: make(map[string]time.Time)}
}

type throttleKey struct {
	key  string
	rule throttleRule
}

// keys are the throttle's keys for a login to account from addr.
func (t *Throttle) keysLocked(account, addr string, now time.Time) []throttleKey {
	account = strings.ToLower(account)
	keys := []throttleKey{{"addr\x00" + addr, ruleAddr}, {"pair\x00" + account + "\x00" + addr, rulePair}}
	if last, ok := t.known[account+"\x00"+addr]; !ok || now.Sub(last) > trustFor {
		keys = append(keys, throttleKey{"account\x00" + account, ruleAccount})
	}
	return keys
}

// Wait returns how long a login to account from addr must wait before
// it is tried, or 0 if it may be tried now.
func (t *Throttle) Wait(account, addr string) time.Duration {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, k := range t.keysLocked(account, addr, now) {
		if s := t.strikes[k.key]; s != nil && s.until.After(now) {
			wait = max(wait, s.until.Sub(now))
		}
	}
	return wait
}

// Failed records a failed login to account from addr.
func (t *Throttle) Failed(account, addr string) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.keysLocked(account, addr, now) {
		s := t.strikes[k.key]
		if s == nil {
			if len(t.strikes) >= maxThrottleKeys && !t.sweepLocked(now) {
				continue
			}
			s = &strike{}
			t.strikes[k.key] = s
		}
		if now.Sub(s.last) > throttleForget {
			s.n = 0
		}
		s.n++
		s.last = now
		if over := s.n - k.rule.free; over > 0 {
			wait := k.rule.max
			if over <= 30 && k.rule.base<<(over-1) < k.rule.max {
				wait = k.rule.base << (over - 1)
			}
			s.until = now.Add(wait)
		}
	}
}

// Succeeded records a successful login to account from addr: the address
// is known to the account from now on, and its failures there forgiven.
func (t *Throttle) Succeeded(account, addr string) {
	now := t.now()
	account = strings.ToLower(account)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.strikes, "pair\x00"+account+"\x00"+addr)
	if len(t.known) >= maxThrottleKeys {
		for k, last := range t.known {
			if now.Sub(last) > trustFor {
				delete(t.known, k)
			}
		}
		if len(t.known) >= maxThrottleKeys {
			return
		}
	}
	t.known[account+"\x00"+addr] = now
}

// sweepLocked forgets strikes that no longer matter and reports whether
// that made room.
func (t *Throttle) sweepLocked(now time.Time) bool {
	for k, s := range t.strikes {
		if now.Sub(s.last) > throttleForget && !s.until.After(now) {
			delete(t.strikes, k)
		}
	}
	return len(t.strikes) < maxThrottleKeys
}
