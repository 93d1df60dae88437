package loadtest

import (
	"sync/atomic"
	"time"
)

// timeline counts events per second since a start time. Counting is
// lock-free; events past the last second are counted in it.
type timeline struct {
	start   time.Time
	buckets []atomic.Int64
}

func newTimeline(start time.Time, span time.Duration) *timeline {
	return &timeline{start: start, buckets: make([]atomic.Int64, int(span/time.Second)+2)}
}

// add counts n events at time t (unix ns).
func (tl *timeline) add(t int64, n int64) {
	tl.buckets[secondIndex(t, tl.start.UnixNano(), len(tl.buckets))].Add(n)
}

// counts returns the per-second counts up to the last non-zero second.
func (tl *timeline) counts() []int64 {
	out := make([]int64, len(tl.buckets))
	last := -1
	for i := range tl.buckets {
		if out[i] = tl.buckets[i].Load(); out[i] != 0 {
			last = i
		}
	}
	return out[:last+1]
}

// secondIndex is the bucket of time t (unix ns) in a timeline of n
// one-second buckets from start (unix ns), clamped to [0, n).
func secondIndex(t, start int64, n int) int {
	i := int((t - start) / int64(time.Second))
	return min(max(i, 0), n-1)
}
