package loadtest

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteText writes the report as a readable summary.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	s := r.Settings
	fmt.Fprintf(&b, "wspush bench %s: %s %s, %d connections", r.Command, s.Proto, s.URL, s.N)
	switch {
	case r.Command == "conns":
		fmt.Fprintf(&b, ", held %gs", s.Hold)
	case s.Max:
		fmt.Fprintf(&b, ", publishing at full speed (%d workers) for %gs, %d-byte payloads", s.Workers, s.Duration, s.Payload)
	default:
		fmt.Fprintf(&b, ", publishing %g msg/s for %gs, %d-byte payloads", s.Rate, s.Duration, s.Payload)
	}
	b.WriteString("\n")

	c := r.Connect
	fmt.Fprintf(&b, "  connect     %d of %d in %.2f s (%s/s), %d failed\n", c.Connected, c.Attempted, c.Seconds, si(c.Rate), c.Failed)
	writeCounts(&b, "              failed: ", c.Failures)
	if m := r.Memory; m != nil {
		fmt.Fprintf(&b, "  memory      %s per connection: server RSS %s before, %s holding %d connections",
			bytesIEC(m.PerConnBytes), bytesIEC(m.BeforeBytes), bytesIEC(m.AfterBytes), m.Connections)
		if m.PeakBytes > 0 {
			fmt.Fprintf(&b, " (peak %s)", bytesIEC(m.PeakBytes))
		}
		fmt.Fprintf(&b, "\n              from %s\n", m.Source)
	}
	if p := r.Publish; p != nil {
		fmt.Fprintf(&b, "  publish     %d published in %.2f s (%s/s), %d api errors", p.OK, p.Seconds, si(p.Rate), p.APIErrors)
		if p.MaxLagMS > 1 {
			fmt.Fprintf(&b, ", at worst %.1f ms behind schedule", p.MaxLagMS)
		}
		b.WriteString("\n")
		writeCounts(&b, "              error: ", p.Errors)
	}
	if d := r.Delivery; d != nil {
		fmt.Fprintf(&b, "  delivery    %d of %d expected (%d subscribers): lost %d, duplicates %d", d.Delivered, d.Expected, d.Subscribers, d.Lost, d.Duplicates)
		if d.Unexpected > 0 {
			fmt.Fprintf(&b, ", %d of failed publishes", d.Unexpected)
		}
		fmt.Fprintf(&b, "\n              %s deliveries/s over %.2f s (first publish to last delivery)\n", si(d.Rate), d.Seconds)
	}
	if l := r.Latency; l != nil && l.Samples > 0 {
		b.WriteString("  latency     " + l.line() + "  publish call start to receipt\n")
	}
	if l := r.KernelLatency; l != nil && l.Samples > 0 {
		b.WriteString("  kernel rx   " + l.line() + "  to the kernel's receive time (no client delay)\n")
	}
	if l := r.APILatency; l != nil && l.Samples > 0 {
		b.WriteString("  api call    " + l.line() + "  publish call round trip\n")
	}
	if cpu := r.CPU; cpu != nil {
		fmt.Fprintf(&b, "  server cpu  %.2f s over publish and drain: %s deliveries per cpu-second, %s publishes per cpu-second\n",
			cpu.Seconds, si(cpu.DeliveriesPerCPUSecond), si(cpu.PublishesPerCPUSecond))
	}
	if m := r.Machine; m != nil {
		fmt.Fprintf(&b, "  machine     cpu busy %.1f%%, steal %.1f%% over publish and drain (steal: the hypervisor ran other guests)\n",
			m.BusyPercent, m.StealPercent)
	}
	writeCounts(&b, "  disconnect  ", r.Disconnects)
	for _, wn := range r.Warnings {
		b.WriteString("  WARNING     " + wn + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (l *LatencyStats) line() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s ms (%d samples)",
		ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), l.Samples)
}

// writeCounts writes one line per reason, most frequent first.
func writeCounts(b *strings.Builder, prefix string, m map[string]int) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		fmt.Fprintf(b, "%s%d x %s\n", prefix, m[k], k)
	}
}

// ms formats milliseconds with three significant figures or so.
func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// si formats a rate with a k or M suffix.
func si(v float64) string {
	switch {
	case v >= 10e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 10e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.2fk", v/1e3)
	}
	return fmt.Sprintf("%.1f", v)
}

// bytesIEC formats a byte count (which may be negative: RSS can shrink).
func bytesIEC(n int64) string {
	v, neg := float64(n), n < 0
	if neg {
		v = -v
	}
	var s string
	switch {
	case v >= 1<<30:
		s = fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20:
		s = fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		s = fmt.Sprintf("%.2f KiB", v/(1<<10))
	default:
		s = fmt.Sprintf("%.0f B", v)
	}
	if neg {
		return "-" + s
	}
	return s
}
