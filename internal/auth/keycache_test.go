package auth_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/auth"
	"github.com/wrennhq/wrenn/internal/clocktest"
)

// memKeys is an in-memory KeyStore that counts lookups and touches; an
// optional hook runs inside each lookup, after it has read.
type memKeys struct {
	mu      sync.Mutex
	keys    map[string]*wrenn.APIKey // by ID
	lookups int
	touches []time.Time
	hook    func()
}

func newMemKeys() *memKeys { return &memKeys{keys: map[string]*wrenn.APIKey{}} }

func (m *memKeys) CreateAPIKey(_ context.Context, k *wrenn.APIKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[k.ID] = k
	return nil
}

func (m *memKeys) ListAPIKeys(context.Context, string) ([]*wrenn.APIKey, error) { return nil, nil }

func (m *memKeys) DeleteAPIKey(_ context.Context, teamID, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.keys[id]; !ok || k.TeamID != teamID {
		return wrenn.Errorf(wrenn.ENotFound, "api key not found")
	}
	delete(m.keys, id)
	return nil
}

func (m *memKeys) APIKeyByHash(_ context.Context, hash []byte) (*wrenn.APIKey, error) {
	m.mu.Lock()
	m.lookups++
	var found *wrenn.APIKey
	for _, k := range m.keys {
		if bytes.Equal(k.KeyHash, hash) {
			c := *k
			found = &c
		}
	}
	hook := m.hook
	m.mu.Unlock()
	if hook != nil {
		hook()
	}
	if found == nil {
		return nil, wrenn.Errorf(wrenn.ENotFound, "api key not found")
	}
	return found, nil
}

func (m *memKeys) TouchAPIKey(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.touches = append(m.touches, at)
	if k, ok := m.keys[id]; ok {
		k.LastUsed = &at
	}
	return nil
}

func (m *memKeys) counts() (lookups, touches int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookups, len(m.touches)
}

// keyService is a Service on keys with the clock and cache TTL given.
func keyService(keys auth.KeyStore, clock *clocktest.Clock, ttl time.Duration) *auth.Service {
	return auth.NewService(auth.Config{Keys: keys, Now: clock.Now, KeyCacheTTL: ttl,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

var teamA = auth.Caller{UserID: "usr-a", TeamID: "team-a"}

func TestAPIKeyCache(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

	t.Run("a key is looked up once per TTL", func(t *testing.T) {
		keys, clock := newMemKeys(), clocktest.New(start)
		s := keyService(keys, clock, 0) // the default TTL
		k, plain, err := s.CreateAPIKey(ctx, teamA, "k")
		if err != nil {
			t.Fatal(err)
		}
		for range 100 {
			c, err := s.AuthenticateAPIKey(ctx, plain)
			if err != nil || c != (auth.Caller{UserID: "usr-a", TeamID: "team-a", APIKeyID: k.ID}) {
				t.Fatalf("AuthenticateAPIKey = %+v, %v", c, err)
			}
		}
		if l, _ := keys.counts(); l != 1 {
			t.Errorf("%d lookups for 100 requests inside the TTL, want 1", l)
		}
		clock.Advance(auth.DefaultKeyCacheTTL)
		if _, err := s.AuthenticateAPIKey(ctx, plain); err != nil {
			t.Fatal(err)
		}
		if l, _ := keys.counts(); l != 2 {
			t.Errorf("%d lookups once the TTL has passed, want 2", l)
		}
	})

	t.Run("deleted here: refused at once", func(t *testing.T) {
		keys, clock := newMemKeys(), clocktest.New(start)
		s := keyService(keys, clock, time.Hour)
		k, plain, _ := s.CreateAPIKey(ctx, teamA, "k")
		if _, err := s.AuthenticateAPIKey(ctx, plain); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAPIKey(ctx, teamA, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateAPIKey(ctx, plain); wrenn.ErrorCode(err) != wrenn.EUnauthorized || wrenn.ErrorMessage(err) != "invalid API key" {
			t.Fatalf("revoked key: %v, want invalid API key", err)
		}
	})

	t.Run("deleted by another replica: refused once the TTL has passed", func(t *testing.T) {
		keys, clock := newMemKeys(), clocktest.New(start)
		here, there := keyService(keys, clock, 0), keyService(keys, clock, 0)
		k, plain, _ := there.CreateAPIKey(ctx, teamA, "k")
		if _, err := here.AuthenticateAPIKey(ctx, plain); err != nil {
			t.Fatal(err)
		}
		if err := there.DeleteAPIKey(ctx, teamA, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := there.AuthenticateAPIKey(ctx, plain); err == nil {
			t.Fatal("the replica that deleted the key still takes it")
		}
		clock.Advance(auth.DefaultKeyCacheTTL - time.Nanosecond)
		if _, err := here.AuthenticateAPIKey(ctx, plain); err != nil {
			t.Fatalf("inside the TTL the other replica's cache vouches for the key, got %v", err)
		}
		clock.Advance(time.Nanosecond)
		if _, err := here.AuthenticateAPIKey(ctx, plain); wrenn.ErrorCode(err) != wrenn.EUnauthorized {
			t.Fatalf("revoked key after the TTL: %v, want unauthorized", err)
		}
	})

	t.Run("a lookup in flight during a delete is not cached", func(t *testing.T) {
		keys, clock := newMemKeys(), clocktest.New(start)
		s := keyService(keys, clock, time.Hour)
		k, plain, _ := s.CreateAPIKey(ctx, teamA, "k")
		// The lookup reads the key; the delete runs to completion before
		// the lookup returns what it read.
		read, deleted := make(chan struct{}), make(chan struct{})
		keys.hook = func() { close(read); <-deleted }
		done := make(chan error)
		go func() {
			_, err := s.AuthenticateAPIKey(ctx, plain)
			done <- err
		}()
		<-read
		keys.mu.Lock()
		keys.hook = nil
		keys.mu.Unlock()
		if err := s.DeleteAPIKey(ctx, teamA, k.ID); err != nil {
			t.Fatal(err)
		}
		close(deleted)
		if err := <-done; err != nil {
			t.Fatalf("the request that read the key before its deletion: %v", err)
		}
		if _, err := s.AuthenticateAPIKey(ctx, plain); wrenn.ErrorCode(err) != wrenn.EUnauthorized {
			t.Fatalf("a key deleted while a lookup was in flight was cached: %v", err)
		}
	})

	t.Run("unknown keys are not cached", func(t *testing.T) {
		keys, clock := newMemKeys(), clocktest.New(start)
		s := keyService(keys, clock, time.Hour)
		plain, _, _ := auth.NewAPIKey()
		for range 3 {
			if _, err := s.AuthenticateAPIKey(ctx, plain); wrenn.ErrorCode(err) != wrenn.EUnauthorized {
				t.Fatalf("unknown key: %v", err)
			}
		}
		if l, _ := keys.counts(); l != 3 {
			t.Errorf("%d lookups of an unknown key sent 3 times, want 3", l)
		}
		// A key created after an unknown one was refused works at once.
		_, fresh, _ := s.CreateAPIKey(ctx, teamA, "k")
		if _, err := s.AuthenticateAPIKey(ctx, fresh); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("last_used is written once per resolution from the cache", func(t *testing.T) {
		keys, clock := newMemKeys(), clocktest.New(start)
		s := keyService(keys, clock, time.Hour)
		_, plain, _ := s.CreateAPIKey(ctx, teamA, "k")
		step := auth.LastUsedResolution / 4
		for range 9 { // at 0, ¼, … 2 resolutions
			if _, err := s.AuthenticateAPIKey(ctx, plain); err != nil {
				t.Fatal(err)
			}
			clock.Advance(step)
		}
		lookups, touches := keys.counts()
		if lookups != 1 || touches != 3 {
			t.Errorf("%d lookups and %d touches over two resolutions, want 1 and 3", lookups, touches)
		}
	})

	t.Run("a negative TTL caches nothing", func(t *testing.T) {
		keys, clock := newMemKeys(), clocktest.New(start)
		s := keyService(keys, clock, -1)
		_, plain, _ := s.CreateAPIKey(ctx, teamA, "k")
		for range 3 {
			if _, err := s.AuthenticateAPIKey(ctx, plain); err != nil {
				t.Fatal(err)
			}
		}
		if l, _ := keys.counts(); l != 3 {
			t.Errorf("%d lookups without a cache, want 3", l)
		}
	})
}
