package loadtest

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records durations in log-linear buckets: exact below 256 ns,
// then 128 buckets per power of two (a relative error under 0.8%), up to
// about 18 minutes; longer durations land in the last bucket. Recording is
// lock-free: each recorder writes to one of several stripes (its own when
// recorders pass distinct stripe numbers), so concurrent subscribers rarely
// touch the same cache lines. The zero value is ready to use.
type Histogram struct {
	stripes [histStripes]histStripe
	min     atomic.Int64 // 0 until the first sample; stored +1 so 0 means unset
	max     atomic.Int64
}

const (
	histSubBits  = 7
	histSub      = 1 << histSubBits
	histMaxBits  = 40 // 2^40 ns is about 18 minutes
	histBuckets  = (histMaxBits - histSubBits + 1) * histSub
	histStripes  = 16
	histMaxValue = 1<<histMaxBits - 1
)

type histStripe struct {
	counts [histBuckets]atomic.Uint64
	sum    atomic.Int64
}

// histBucket returns the bucket of v (nanoseconds, >= 0).
func histBucket(v uint64) int {
	if v > histMaxValue {
		v = histMaxValue
	}
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // v>>shift is in [histSub, 2*histSub)
	return shift*histSub + int(v>>shift)
}

// histBounds returns the smallest and largest value of bucket i.
func histBounds(i int) (lo, hi uint64) {
	if i < 2*histSub {
		return uint64(i), uint64(i)
	}
	shift := i/histSub - 1
	lo = uint64(i-shift*histSub) << shift
	return lo, lo + 1<<shift - 1
}

// Record adds one sample of d, into stripe (any int; recorders that pass
// different values contend less).
func (h *Histogram) Record(stripe int, d time.Duration) {
	v := max(int64(d), 0)
	s := &h.stripes[uint(stripe)%histStripes]
	s.counts[histBucket(uint64(v))].Add(1)
	s.sum.Add(v)
	for m := h.max.Load(); v > m && !h.max.CompareAndSwap(m, v); m = h.max.Load() {
	}
	for m := h.min.Load(); (m == 0 || v+1 < m) && !h.min.CompareAndSwap(m, v+1); m = h.min.Load() {
	}
}

// Snapshot merges the stripes. Take it after recording has stopped for an
// exact result; during recording it is a close approximation.
func (h *Histogram) Snapshot() *HistogramSnapshot {
	s := &HistogramSnapshot{Counts: make([]uint64, histBuckets), Max: time.Duration(h.max.Load())}
	if m := h.min.Load(); m > 0 {
		s.Min = time.Duration(m - 1)
	}
	var sum int64
	for i := range h.stripes {
		st := &h.stripes[i]
		for b := range st.counts {
			c := st.counts[b].Load()
			s.Counts[b] += c
			s.Total += c
		}
		sum += st.sum.Load()
	}
	if s.Total > 0 {
		s.Mean = time.Duration(sum / int64(s.Total))
	}
	return s
}

// HistogramSnapshot is a merged, immutable copy of a Histogram.
type HistogramSnapshot struct {
	Counts         []uint64 // per bucket
	Total          uint64
	Min, Max, Mean time.Duration
}

// Quantile returns the value below or at which a fraction q of the samples
// lie (the sample of rank ceil(q*Total)), to within the bucket resolution.
func (s *HistogramSnapshot) Quantile(q float64) time.Duration {
	if s.Total == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(s.Total))), 1)
	var cum uint64
	for i, c := range s.Counts {
		if cum += c; cum >= rank {
			lo, hi := histBounds(i)
			mid := time.Duration(lo + (hi-lo)/2)
			return min(max(mid, s.Min), s.Max)
		}
	}
	return s.Max
}
