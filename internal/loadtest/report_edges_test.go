package loadtest

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestHTMLReportEdges: the HTML report renders, with no NaN or Inf and
// nothing fetched, for empty, single, all-zero and extreme samples.
func TestHTMLReportEdges(t *testing.T) {
	mk := func(vals ...time.Duration) *HistogramSnapshot {
		var h Histogram
		for i, v := range vals {
			h.Record(i, v)
		}
		return h.Snapshot()
	}
	for name, snap := range map[string]*HistogramSnapshot{
		"empty": mk(), "one": mk(3 * time.Millisecond), "zero": mk(0), "zeros": mk(0, 0, 0),
		"sub-us": mk(100, 200), "huge": mk(20 * time.Minute), "two": mk(time.Millisecond, time.Second),
	} {
		r := &Report{Command: "fanout", Started: time.Now(), latency: snap, apiLatency: snap, rxLatency: snap,
			Delivery: &DeliveryStats{Timeline: []int64{0, 0, 1}}, Publish: &PublishStats{Timeline: []int64{1}},
			Memory: &MemoryStats{PerConnBytes: -5}}
		if snap.Total > 0 {
			r.Latency = latencyStats(snap)
		}
		var b bytes.Buffer
		if err := r.WriteHTML(&b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, bad := range []string{"NaN", "Inf", "-0.0,"} {
			if strings.Contains(b.String(), bad) {
				i := strings.Index(b.String(), bad)
				t.Errorf("%s: %q in report: ...%s...", name, bad, b.String()[max(0, i-200):i+50])
			}
		}
	}
}
