package loadtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	prev := histBucket(0)
	for v := uint64(1); v < 1<<22; v++ {
		b := histBucket(v)
		if b != prev && b != prev+1 {
			t.Fatalf("bucket gap at %d: %d -> %d", v, prev, b)
		}
		prev = b
	}
	for i := range histBuckets {
		lo, hi := histBounds(i)
		if histBucket(lo) != i || histBucket(hi) != i {
			t.Fatalf("bucket %d: bounds [%d, %d] map to %d and %d", i, lo, hi, histBucket(lo), histBucket(hi))
		}
		if lo > 0 && float64(hi-lo)/float64(lo) > 1.0/histSub {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d", i, lo, hi, histSub)
		}
	}
	if histBucket(math.MaxUint64) != histBuckets-1 {
		t.Fatal("huge values must land in the last bucket")
	}
}

// TestHistogramQuantiles compares percentiles with those of the sorted samples.
func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform 0-10ms": func() time.Duration { return time.Duration(r.Int64N(int64(10 * time.Millisecond))) },
		"exponential":    func() time.Duration { return time.Duration(r.ExpFloat64() * float64(2*time.Millisecond)) },
		"bimodal": func() time.Duration {
			if r.IntN(100) < 3 {
				return 40*time.Millisecond + time.Duration(r.Int64N(int64(time.Millisecond)))
			}
			return 300*time.Microsecond + time.Duration(r.Int64N(int64(100*time.Microsecond)))
		},
		"few samples": nil,
	}
	for name, gen := range dists {
		n := 50000
		if gen == nil {
			n, gen = 7, func() time.Duration { return time.Duration(r.Int64N(int64(time.Second))) }
		}
		var h Histogram
		ref := make([]time.Duration, n)
		for i := range ref {
			ref[i] = gen()
			h.Record(i, ref[i])
		}
		slices.Sort(ref)
		s := h.Snapshot()
		if s.Total != uint64(n) || s.Min != ref[0] || s.Max != ref[n-1] {
			t.Fatalf("%s: total %d min %v max %v, want %d %v %v", name, s.Total, s.Min, s.Max, n, ref[0], ref[n-1])
		}
		for _, q := range []float64{0, 0.001, 0.5, 0.9, 0.99, 0.999, 1} {
			want := ref[max(int(math.Ceil(q*float64(n)))-1, 0)]
			got := s.Quantile(q)
			if diff := math.Abs(float64(got - want)); diff > float64(want)/histSub+1 {
				t.Errorf("%s: q%v = %v, want %v (within 1/%d)", name, q, got, want, histSub)
			}
		}
	}
	if (&HistogramSnapshot{}).Quantile(0.5) != 0 {
		t.Fatal("empty histogram")
	}
}

func TestHistogramConcurrent(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10000 {
				h.Record(g, time.Duration(i+1)*time.Microsecond)
			}
		})
	}
	wg.Wait()
	s := h.Snapshot()
	if s.Total != 80000 || s.Min != time.Microsecond || s.Max != 10000*time.Microsecond {
		t.Fatalf("total %d min %v max %v", s.Total, s.Min, s.Max)
	}
	if d := s.Mean - 5000500*time.Nanosecond; d < -time.Microsecond || d > time.Microsecond {
		t.Fatalf("mean %v", s.Mean)
	}
	if allocs := testing.AllocsPerRun(100, func() { h.Record(3, time.Millisecond) }); allocs != 0 {
		t.Fatalf("Record allocates %v", allocs)
	}
}
