package netslot

import (
	"context"
	"testing"
	"time"
)

// The Acquire benchmarks time whole cycles (waiting for the pool to refill,
// acquire, release), because each pooled acquisition must be paid for by a
// build: timing the acquisition alone would make the benchmark framework
// scale b.N by microseconds while each iteration costs tens of milliseconds.
// The figures that matter are the custom metrics: ns/acquire is what a
// sandbox create waits for, ns/release what a delete waits for.

// BenchmarkAcquireFromPool: Acquire finds a ready slot.
func BenchmarkAcquireFromPool(b *testing.B) { benchAcquire(b, 4) }

// BenchmarkAcquireCold: no pool, so Acquire builds the slot inline.
func BenchmarkAcquireCold(b *testing.B) { benchAcquire(b, -1) }

func benchAcquire(b *testing.B, poolSize int) {
	c := testConfig(b)
	c.PoolSize = poolSize
	m := MustManager(b, c)
	ctx := context.Background()
	var n int
	var acquire, release time.Duration
	for b.Loop() {
		if poolSize > 0 {
			waitFor(b, "a full pool", func() bool { return m.Stats().Ready == poolSize })
		}
		t0 := time.Now()
		s, err := m.Acquire(ctx)
		t1 := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Release(ctx, s); err != nil {
			b.Fatal(err)
		}
		acquire += t1.Sub(t0)
		release += time.Since(t1)
		n++
	}
	b.ReportMetric(float64(acquire.Nanoseconds())/float64(n), "ns/acquire")
	b.ReportMetric(float64(release.Nanoseconds())/float64(n), "ns/release")
}

// BenchmarkOpenTap is the VMM's cost of getting a slot's TAP descriptor.
func BenchmarkOpenTap(b *testing.B) {
	m := MustManager(b, testConfig(b))
	s := MustAcquire(b, m)
	for b.Loop() {
		f, err := s.OpenTap()
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
