package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"time"
)

// ConnsConfig configures RunConns.
type ConnsConfig struct {
	Target
	N    int           // connections to open
	Ramp float64       // new connections per second at most (0: as fast as handshakes complete)
	Hold time.Duration // how long to hold them all before sampling the server's memory
	// PID is the server's process id: its VmRSS is sampled from
	// /proc/PID/status. Or, with Metrics, the server's Prometheus endpoint
	// is asked for process_resident_memory_bytes. With neither, memory is
	// not measured.
	PID     int
	Metrics string
}

// Defaults of the run settings.
const (
	DefaultRamp        = 2000
	DefaultHold        = 5 * time.Second
	DefaultDuration    = 10 * time.Second
	DefaultDrain       = 2 * time.Second
	DefaultPayload     = 64
	DefaultWorkersMax  = 4  // publishers at full speed (fanout --max)
	DefaultWorkersRate = 16 // concurrent calls available to a fixed-rate publisher
	DefaultWorkersAPI  = 16 // publishers of `bench publish`
)

// connsReadBuf is the initial read buffer of an idle connection: enough
// for welcomes, replies and heartbeats; it grows if more ever comes.
const connsReadBuf = 512

// RunConns opens cfg.N connections, subscribes each to the channel, holds
// them for cfg.Hold, and measures the connect rate and the server's memory
// per connection: (RSS while holding - RSS before dialing) / connections.
func RunConns(ctx context.Context, cfg ConnsConfig, prog *Progress) (*Report, error) {
	cfg.Target = cfg.Target.withDefaults()
	if cfg.Hold <= 0 {
		cfg.Hold = DefaultHold
	}
	if err := cfg.Target.check(false); err != nil {
		return nil, err
	}
	if cfg.N < 1 {
		return nil, errors.New("-n must be at least 1")
	}
	if cfg.PID > 0 && cfg.Metrics != "" {
		return nil, errors.New("give --pid or --metrics, not both")
	}
	if cfg.Metrics != "" {
		if err := checkURL("--metrics", cfg.Metrics, []string{"http", "https"}, cfg.AllowRemote); err != nil {
			return nil, err
		}
	}
	if err := checkFileLimit(cfg.N, 0); err != nil {
		return nil, err
	}
	r := &Report{Command: "conns", Started: time.Now(), Settings: settings(cfg.Target, cfg.N)}
	r.Settings.Ramp, r.Settings.Hold, r.Settings.PID, r.Settings.Metrics = cfg.Ramp, cfg.Hold.Seconds(), cfg.PID, cfg.Metrics

	mem := newMemorySampler(cfg.PID, cfg.Metrics, cfg.Timeout)
	defer mem.close()
	var before int64
	if mem != nil {
		var err error
		if before, err = mem.rss(ctx); err != nil {
			return nil, err
		}
	}

	f, st := openAll(ctx, cfg.Target, cfg.N, cfg.Ramp, connsReadBuf, false, prog, func(_ int, c *conn) error {
		return c.idle()
	})
	r.Connect = st
	defer f.closeAll()
	if st.Connected == 0 {
		return r, fmt.Errorf("no connection succeeded: %v", st.Failures)
	}

	holdEnd := time.Now().Add(cfg.Hold)
	stop := prog.show(func() string {
		return fmt.Sprintf("holding %d connections  %d dropped  %.0fs left", st.Connected, f.drops.total(),
			max(time.Until(holdEnd), 0).Seconds())
	})
	err := sleepUntil(ctx, holdEnd)
	stop()
	if mem != nil && err == nil {
		ms := &MemoryStats{Source: mem.source(), BeforeBytes: before, Connections: st.Connected - f.drops.total()}
		if ms.AfterBytes, err = mem.rss(ctx); err == nil {
			ms.PeakBytes = mem.peak()
			ms.PerConnBytes = (ms.AfterBytes - ms.BeforeBytes) / int64(max(ms.Connections, 1))
			r.Memory = ms
		}
	}
	f.closeAll()
	r.Disconnects = f.drops.counts()
	if n := f.drops.total(); n > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d connections were closed by the server while held", n))
	}
	return r, err
}

// settings fills the common part of a report's settings.
func settings(t Target, n int) Settings {
	return Settings{URL: t.URL, API: t.API, Proto: t.Proto, Channel: t.Channel, N: n, SrcIPs: len(t.sourceIPs()),
		GoVersion: runtime.Version(), NumCPU: runtime.NumCPU()}
}

// memorySampler reads the server's resident memory, from /proc or from
// its metrics.
type memorySampler struct {
	pid     int
	metrics string
	client  *http.Client
}

// newMemorySampler returns nil when neither pid nor metrics is given.
func newMemorySampler(pid int, metrics string, timeout time.Duration) *memorySampler {
	switch {
	case pid > 0:
		return &memorySampler{pid: pid}
	case metrics != "":
		return &memorySampler{metrics: metrics, client: &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil}}}
	}
	return nil
}

func (m *memorySampler) source() string {
	if m.pid > 0 {
		return fmt.Sprintf("/proc/%d/status VmRSS", m.pid)
	}
	return m.metrics + " process_resident_memory_bytes"
}

func (m *memorySampler) rss(ctx context.Context) (int64, error) {
	if m.pid > 0 {
		return procStatusBytes(m.pid, "VmRSS")
	}
	return metricsRSS(ctx, m.client, m.metrics)
}

// peak is the server's peak RSS (VmHWM) so far, 0 when not known.
func (m *memorySampler) peak() int64 {
	if m.pid <= 0 {
		return 0
	}
	v, _ := procStatusBytes(m.pid, "VmHWM")
	return v
}

func (m *memorySampler) close() {
	if m != nil && m.client != nil {
		m.client.CloseIdleConnections()
	}
}
