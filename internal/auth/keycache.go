package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"sync"
	"time"
)

// The API key cache (issue 14): a key found in the store is remembered,
// by the SHA-256 of its plaintext, for KeyCacheTTL, so that a busy key
// costs a hash and a map read per request instead of a store query.
//
// Revocation: deleting a key through this Service forgets it at once, and
// a lookup that was in flight when it was deleted does not put it back
// (a generation count). Another process on the same store (a replica of
// the control plane on PostgreSQL) forgets it when its entry expires, so
// a revoked key is refused everywhere within KeyCacheTTL of its deletion.
// Unknown keys are not remembered: each costs a store lookup, as before.

// DefaultKeyCacheTTL is how long a verified key is trusted without asking
// the store again, and so the most a revocation takes to reach other
// replicas.
const DefaultKeyCacheTTL = time.Second

// keyCacheMax bounds the cache's entries; past it, expired entries are
// swept, and if none were, the cache starts again empty.
const keyCacheMax = 10_000

type keyHash = [sha256.Size]byte

// cachedKey is a key the store vouched for.
type cachedKey struct {
	hash     keyHash
	caller   Caller
	lastUsed time.Time // as recorded, or as this process last wrote it
	expires  time.Time
}

type keyCache struct {
	ttl     time.Duration // 0: nothing is cached
	mu      sync.RWMutex
	gen     uint64 // bumped by every forget
	entries map[keyHash]cachedKey
}

func newKeyCache(ttl time.Duration) *keyCache {
	return &keyCache{ttl: max(ttl, 0), entries: make(map[keyHash]cachedKey)}
}

// get returns the unexpired entry for hash.
func (c *keyCache) get(hash keyHash, now time.Time) (cachedKey, bool) {
	if c.ttl == 0 {
		return cachedKey{}, false
	}
	c.mu.RLock()
	e, ok := c.entries[hash]
	c.mu.RUnlock()
	// The map found the entry by hash; the comparison keeps the rule that
	// key material is compared in constant time.
	if !ok || !now.Before(e.expires) || subtle.ConstantTimeCompare(e.hash[:], hash[:]) != 1 {
		return cachedKey{}, false
	}
	return e, true
}

// generation is the count put checks: take it before reading the store.
func (c *keyCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put remembers e until now+ttl, unless a key was forgotten since gen was
// taken: the store read that found e may predate that deletion.
func (c *keyCache) put(gen uint64, e cachedKey, now time.Time) {
	if c.ttl == 0 {
		return
	}
	e.expires = now.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= keyCacheMax {
		for h, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, h)
			}
		}
		if len(c.entries) >= keyCacheMax {
			clear(c.entries)
		}
	}
	c.entries[e.hash] = e
}

// claimTouch reports whether this request is the one to write the last
// use of the key hashed hash at now: true when the key is not cached, or
// when its recorded use is LastUsedResolution old and no other request
// has claimed the write since (then it records now as its last use, so
// that a busy key is one write per resolution, not one per request in
// flight).
func (c *keyCache) claimTouch(hash keyHash, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !ok {
		return true
	}
	if now.Sub(e.lastUsed) < LastUsedResolution {
		return false
	}
	e.lastUsed = now
	c.entries[hash] = e
	return true
}

// forget drops the key whose ID is id, and keeps lookups in flight from
// putting it back.
func (c *keyCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h, e := range c.entries {
		if e.caller.APIKeyID == id {
			delete(c.entries, h)
		}
	}
}
