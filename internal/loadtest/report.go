package loadtest

import (
	"time"
)

// Report is every figure of one run. Sections a run does not measure are
// nil and left out of the JSON.
type Report struct {
	Command  string    `json:"command"` // conns, fanout or publish
	Started  time.Time `json:"started"`
	Settings Settings  `json:"settings"`

	Connect  ConnectStats   `json:"connect"`
	Memory   *MemoryStats   `json:"server_memory,omitempty"`
	Publish  *PublishStats  `json:"publish,omitempty"`
	Delivery *DeliveryStats `json:"delivery,omitempty"`
	Latency  *LatencyStats  `json:"latency,omitempty"` // publish call start to receipt
	// KernelLatency is publish call start to the kernel's receive
	// timestamp of the frame (64-bit Linux): Latency without the client's
	// own scheduling delay.
	KernelLatency *LatencyStats  `json:"latency_kernel,omitempty"`
	APILatency    *LatencyStats  `json:"api_latency,omitempty"` // publish call round trip
	CPU           *CPUStats      `json:"server_cpu,omitempty"`
	Machine       *MachineStats  `json:"machine_cpu,omitempty"` // Linux only
	Disconnects   map[string]int `json:"disconnects,omitempty"` // connections lost during the run, by reason
	Warnings      []string       `json:"warnings,omitempty"`
	latency       *HistogramSnapshot
	rxLatency     *HistogramSnapshot
	apiLatency    *HistogramSnapshot
}

// Settings echo what the run was asked to do.
type Settings struct {
	URL       string  `json:"url"`
	API       string  `json:"api,omitempty"`
	Metrics   string  `json:"metrics,omitempty"`
	Proto     Proto   `json:"proto"`
	Channel   string  `json:"channel"`
	N         int     `json:"n"`
	Ramp      float64 `json:"ramp_per_second,omitempty"`
	Rate      float64 `json:"rate_per_second,omitempty"`
	Max       bool    `json:"max,omitempty"`
	Workers   int     `json:"workers,omitempty"`
	Duration  float64 `json:"duration_seconds,omitempty"`
	Drain     float64 `json:"drain_seconds,omitempty"`
	Hold      float64 `json:"hold_seconds,omitempty"`
	Payload   int     `json:"payload_bytes,omitempty"`
	SrcIPs    int     `json:"src_ips"`
	PID       int     `json:"pid,omitempty"`
	GoVersion string  `json:"go_version"`
	NumCPU    int     `json:"num_cpu"`
}

// MemoryStats is the server's resident memory before the connections and
// while it holds them.
type MemoryStats struct {
	Source       string `json:"source"` // "/proc/PID/status VmRSS" or the metrics URL
	BeforeBytes  int64  `json:"before_bytes"`
	AfterBytes   int64  `json:"after_bytes"`
	PeakBytes    int64  `json:"peak_bytes,omitempty"` // VmHWM, with --pid
	PerConnBytes int64  `json:"per_connection_bytes"` // (after - before) / connections held
	Connections  int    `json:"connections"`          // held when sampled
}

// MachineStats is how the machine's CPUs spent the publish window and
// the drain, every process included (the client's too, and the server's
// when it runs on the same machine), from /proc/stat.
type MachineStats struct {
	BusyPercent float64 `json:"busy_percent"`
	// StealPercent is the time a virtual machine's CPUs wanted to run
	// while the hypervisor ran something else: on a shared VM, the other
	// guests' load, which delays whatever was running and spreads the
	// latency figures.
	StealPercent float64 `json:"steal_percent"`
}

// PublishStats are the publisher's figures.
type PublishStats struct {
	Issued    int64          `json:"issued"`     // publish calls made
	OK        int64          `json:"published"`  // calls answered 2xx
	APIErrors int64          `json:"api_errors"` // the rest
	Errors    map[string]int `json:"errors,omitempty"`
	Seconds   float64        `json:"seconds"` // the publish window
	Rate      float64        `json:"per_second"`
	// MaxLagMS is how far behind its schedule the fixed-rate publisher
	// dispatched a message at worst (all workers busy).
	MaxLagMS float64 `json:"max_lag_ms,omitempty"`
	Timeline []int64 `json:"timeline,omitempty"` // successful publishes in each second
}

// DeliveryStats count what the subscribers received against what they
// should have: every successful publish, once, on every subscriber.
type DeliveryStats struct {
	Subscribers int   `json:"subscribers"`
	Expected    int64 `json:"expected"`   // successful publishes x subscribers
	Delivered   int64 `json:"delivered"`  // distinct (subscriber, seq) pairs of successful publishes
	Lost        int64 `json:"lost"`       // expected - delivered
	Duplicates  int64 `json:"duplicates"` // repeats of a seq already received by that subscriber
	// Unexpected are deliveries of messages whose publish call failed
	// (the server took the message but the answer did not arrive).
	Unexpected int64 `json:"unexpected,omitempty"`
	// Malformed are pushes without a usable "ts" and "seq".
	Malformed int64 `json:"malformed,omitempty"`
	// Seconds runs from the first publish call to the last delivery.
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"per_second"`         // delivered / seconds
	Timeline []int64 `json:"timeline,omitempty"` // deliveries received in each second
}

// LatencyStats summarize a latency histogram, in milliseconds.
type LatencyStats struct {
	Samples uint64  `json:"samples"`
	Min     float64 `json:"min_ms"`
	Mean    float64 `json:"mean_ms"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	P999    float64 `json:"p99_9_ms"`
	Max     float64 `json:"max_ms"`
}

// CPUStats are the server's CPU time over publishing and draining.
type CPUStats struct {
	Seconds                float64 `json:"seconds"` // utime + stime delta, from /proc/PID/stat
	DeliveriesPerCPUSecond float64 `json:"deliveries_per_cpu_second"`
	PublishesPerCPUSecond  float64 `json:"publishes_per_cpu_second"`
}

func latencyStats(s *HistogramSnapshot) *LatencyStats {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return &LatencyStats{
		Samples: s.Total,
		Min:     ms(s.Min),
		Mean:    ms(s.Mean),
		P50:     ms(s.Quantile(0.50)),
		P90:     ms(s.Quantile(0.90)),
		P99:     ms(s.Quantile(0.99)),
		P999:    ms(s.Quantile(0.999)),
		Max:     ms(s.Max),
	}
}
