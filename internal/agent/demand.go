package agent

import "time"

// The warm pool's sense of demand (issue 14): how many creates of a
// template came together lately. The pool keeps as many members of a
// template as the largest burst of creates of it in the last demandWindow
// (within its floor, ceiling and budget), so that the next burst like it
// finds a member each; once a template has been quiet for demandWindow its
// members beyond the floor end.
//
// A burst is counted in buckets of demandBucket: its size is the most
// creates in any two neighbouring buckets, so that a burst that straddles
// a bucket's edge counts whole. The buckets are short, so that bursts a
// few seconds apart (a refill's time) count each on its own; a steady rate
// of creates counts as the creates of a few seconds, about what comes
// while one member is made.

const (
	demandBucket = 2 * time.Second
	demandWindow = 5 * time.Minute
)

// demand counts one template's creates per bucket, over the window.
type demand struct {
	counts map[int64]int // bucket index → creates in it
}

func bucketOf(t time.Time) int64 { return t.UnixNano() / int64(demandBucket) }

// add counts a create at now.
func (d *demand) add(now time.Time) {
	if d.counts == nil {
		d.counts = make(map[int64]int)
	}
	d.counts[bucketOf(now)]++
	d.prune(now)
}

// prune forgets buckets older than the window.
func (d *demand) prune(now time.Time) {
	oldest := bucketOf(now.Add(-demandWindow))
	for i := range d.counts {
		if i < oldest {
			delete(d.counts, i)
		}
	}
}

// peak is the largest burst of the window: the most creates in two
// neighbouring buckets.
func (d *demand) peak(now time.Time) int {
	d.prune(now)
	peak := 0
	for i, n := range d.counts {
		peak = max(peak, n+d.counts[i-1])
	}
	return peak
}

// empty says whether the window holds no creates.
func (d *demand) empty(now time.Time) bool {
	d.prune(now)
	return len(d.counts) == 0
}
