package auth

import (
	"encoding/binary"
	"testing"
	"time"
)

// TestKeyCacheBounded: a cache that fills up sweeps what has expired, and
// starts again empty when nothing has, so it never holds more than
// keyCacheMax keys.
func TestKeyCacheBounded(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	c := newKeyCache(time.Second)
	put := func(i int, at time.Time) {
		var h keyHash
		binary.BigEndian.PutUint64(h[:], uint64(i))
		c.put(c.generation(), cachedKey{hash: h}, at)
	}
	for i := range keyCacheMax - 1 {
		put(i, now)
	}
	put(-1, now.Add(2*time.Second)) // still fresh when the next comes
	put(-2, now.Add(2*time.Second)) // the rest have expired: swept
	if n := len(c.entries); n != 2 {
		t.Errorf("after a sweep: %d entries, want 2", n)
	}
	for i := range keyCacheMax + 5 {
		put(i, now.Add(2*time.Second))
		if n := len(c.entries); n > keyCacheMax {
			t.Fatalf("%d entries, more than %d", n, keyCacheMax)
		}
	}
}
