package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are argon2id cost parameters.
type PasswordParams struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultPasswordParams follow OWASP's argon2id minimum (19 MiB, 2 passes,
// 1 lane): memory-hard, yet cheap enough that a login stays well under
// 100 ms on a small host.
var DefaultPasswordParams = PasswordParams{Time: 2, Memory: 19 * 1024, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

var errBadHash = errors.New("malformed password hash")

// Hasher hashes and verifies passwords with argon2id. It bounds how many
// hashes run at once so that a burst of logins cannot exhaust memory, and
// callers from different addresses (WithClient) take turns, so that a
// flood of logins from one cannot starve another's.
type Hasher struct {
	params PasswordParams
	slots  *fairSlots
	dummy  string // verified against when there is no user, to equalize timing
}

// NewHasher returns a Hasher running at most concurrency hashes at once.
func NewHasher(p PasswordParams, concurrency int) *Hasher {
	if concurrency < 1 {
		concurrency = 1
	}
	h := &Hasher{params: p, slots: newFairSlots(concurrency)}
	h.dummy = h.encode(make([]byte, saltLen), argon2.IDKey([]byte("wrenn"), make([]byte, saltLen), p.Time, p.Memory, p.Threads, keyLen))
	return h
}

func (h *Hasher) acquire(ctx context.Context) error { return h.slots.acquire(ctx, clientOf(ctx)) }

func (h *Hasher) release() { h.slots.release() }

// fairSlots lets at most n holders in at once. Waiters queue per key and
// the keys take turns, so one key's many waiters cannot starve another's.
type fairSlots struct {
	mu     sync.Mutex
	free   int
	queues map[string][]chan struct{}
	turns  []string // keys with waiters, in the order of their next turn
}

func newFairSlots(n int) *fairSlots {
	return &fairSlots{free: n, queues: make(map[string][]chan struct{})}
}

func (f *fairSlots) acquire(ctx context.Context, key string) error {
	f.mu.Lock()
	if f.free > 0 && len(f.turns) == 0 {
		f.free--
		f.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if len(f.queues[key]) == 0 {
		f.turns = append(f.turns, key)
	}
	f.queues[key] = append(f.queues[key], ch)
	f.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	q := f.queues[key]
	i := slices.Index(q, ch)
	if i < 0 {
		// Handed a slot as ctx ended: give it on.
		f.mu.Unlock()
		f.release()
		return ctx.Err()
	}
	if q = slices.Delete(q, i, i+1); len(q) > 0 {
		f.queues[key] = q
	} else {
		delete(f.queues, key)
		f.turns = slices.DeleteFunc(f.turns, func(k string) bool { return k == key })
	}
	f.mu.Unlock()
	return ctx.Err()
}

// release frees a slot, or hands it to the first waiter of the key whose
// turn it is.
func (f *fairSlots) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.turns) == 0 {
		f.free++
		return
	}
	key := f.turns[0]
	f.turns = f.turns[1:]
	q := f.queues[key]
	next := q[0]
	if q = q[1:]; len(q) > 0 {
		f.queues[key] = q
		f.turns = append(f.turns, key)
	} else {
		delete(f.queues, key)
	}
	close(next)
}

// Hash returns the PHC-encoded argon2id hash of password with a fresh salt.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	if err := h.acquire(ctx); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	defer h.release()
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, keyLen)
	return h.encode(salt, key), nil
}

func (h *Hasher) encode(salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.params.Memory, h.params.Time, h.params.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// Verify reports whether password matches encoded, comparing in constant
// time. The parameters are taken from encoded, so old hashes keep working
// after the defaults change. An empty encoded hash is checked against a
// dummy so that "no such user" costs as much as "wrong password".
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	if encoded == "" {
		encoded = h.dummy
		password += "\x00" // can never match the dummy
	}
	p, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, fmt.Errorf("verify password: %w", err)
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func decodeHash(encoded string) (PasswordParams, []byte, []byte, error) {
	var p PasswordParams
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, errBadHash
	}
	if p.Time == 0 || p.Memory == 0 || p.Threads == 0 {
		return p, nil, nil, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, errBadHash
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) == 0 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}
