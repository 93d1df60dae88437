package loadtest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// FanoutConfig configures RunFanout.
type FanoutConfig struct {
	Target
	N    int     // subscribers
	Ramp float64 // new connections per second at most while subscribing (0: no pacing)
	// Rate is the messages per second of a fixed-rate publisher; with Max
	// instead, Workers publishers call as fast as the server answers.
	Rate     float64
	Max      bool
	Workers  int           // concurrent publish calls (default 4 with Max, 16 with Rate)
	Duration time.Duration // how long to publish
	// Drain is the longest wait, after publishing, for the last deliveries;
	// the wait ends as soon as every expected message has arrived.
	Drain   time.Duration
	Payload int // bytes of each published JSON payload
	// PID is the server's process id: its CPU time over publishing and
	// draining is read from /proc/PID/stat.
	PID int
}

// fanoutReadBuf is a subscriber's initial read buffer: large enough to
// take a burst of batched frames in one read.
const fanoutReadBuf = 16 << 10

// RunFanout subscribes cfg.N connections, publishes through the API, and
// counts what arrives: deliveries, losses, duplicates, latency from the
// start of the publish call to receipt, and (with PID) the server's CPU
// time per delivery.
func RunFanout(ctx context.Context, cfg FanoutConfig, prog *Progress) (*Report, error) {
	return runFanout(ctx, "fanout", cfg, prog)
}

// PublishConfig configures RunPublish.
type PublishConfig struct {
	Target
	Workers     int           // concurrent keep-alive publishers (default 16)
	Duration    time.Duration // how long to publish
	Payload     int           // bytes of each published JSON payload
	PID         int           // the server's process id, for its CPU time
	Subscribers int           // subscribers that make the publishes real (default 1)
}

// RunPublish measures the publish API: cfg.Workers keep-alive publishers
// call it as fast as it answers for cfg.Duration, with cfg.Subscribers
// subscribed so that every publish is delivered (and checked).
func RunPublish(ctx context.Context, cfg PublishConfig, prog *Progress) (*Report, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkersAPI
	}
	if cfg.Subscribers <= 0 {
		cfg.Subscribers = 1
	}
	return runFanout(ctx, "publish", FanoutConfig{
		Target: cfg.Target, N: cfg.Subscribers, Max: true, Workers: cfg.Workers,
		Duration: cfg.Duration, Payload: cfg.Payload, PID: cfg.PID,
	}, prog)
}

// maxSeqHint bounds the sequence numbers a subscriber's set has room for
// at the start (8 KiB each).
const maxSeqHint = 1 << 16

func (cfg *FanoutConfig) check() error {
	cfg.Target = cfg.Target.withDefaults()
	if cfg.Duration <= 0 {
		cfg.Duration = DefaultDuration
	}
	if cfg.Drain <= 0 {
		cfg.Drain = DefaultDrain
	}
	if cfg.Payload <= 0 {
		cfg.Payload = DefaultPayload
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkersRate
		if cfg.Max {
			cfg.Workers = DefaultWorkersMax
		}
	}
	if err := cfg.Target.check(true); err != nil {
		return err
	}
	switch {
	case cfg.N < 1:
		return errors.New("-n must be at least 1")
	case cfg.Max == (cfg.Rate > 0):
		return errors.New("give --rate R (messages per second) or --max, one of them")
	case cfg.Rate < 0:
		return errors.New("--rate must be positive")
	}
	return checkFileLimit(cfg.N, 2*cfg.Workers)
}

func runFanout(ctx context.Context, command string, cfg FanoutConfig, prog *Progress) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &Report{Command: command, Started: time.Now(), Settings: settings(cfg.Target, cfg.N)}
	s := &r.Settings
	s.Ramp, s.Rate, s.Max, s.Workers = cfg.Ramp, cfg.Rate, cfg.Max, cfg.Workers
	s.Duration, s.Drain, s.Payload, s.PID = cfg.Duration.Seconds(), cfg.Drain.Seconds(), cfg.Payload, cfg.PID

	// Subscribe.
	pub := newPublisher(cfg.Target, cfg.Payload, cfg.Workers)
	defer pub.client.CloseIdleConnections()
	var lat, rxLat Histogram
	var start atomic.Int64
	start.Store(time.Now().Add(time.Hour).UnixNano()) // set for real when publishing starts
	seconds := int((cfg.Duration+cfg.Drain+lagLimit)/time.Second) + 2
	// Room for what the rate asks, up to a bound: a rate the server does
	// not keep up with must not allocate it all up front, on every
	// subscriber. The sets grow as needed.
	seqHint := min(int64(cfg.Rate*cfg.Duration.Seconds())+1, maxSeqHint)
	subs := make([]*subscriber, cfg.N)
	for i := range subs {
		subs[i] = &subscriber{idx: i, proto: cfg.Proto, lat: &lat, rxLat: &rxLat, issued: &pub.issued, start: &start,
			seen: newSeqSet(seqHint), perSecond: make([]int64, seconds)}
	}
	f, st := openAll(ctx, cfg.Target, cfg.N, cfg.Ramp, fanoutReadBuf, true, prog, func(i int, c *conn) error {
		return subs[i].run(c)
	})
	r.Connect = st
	defer f.closeAll()
	if st.Connected == 0 {
		return r, fmt.Errorf("no subscriber connected: %v", st.Failures)
	}
	received := func(live []*subscriber) int64 {
		var n int64
		for _, s := range live {
			n += s.received.Load()
		}
		return n
	}

	// Publish.
	cpuBefore, err := serverCPU(cfg.PID)
	if err != nil {
		return r, err
	}
	machineBefore, machineOK := readMachineTimes()
	// Expected: the subscribers connected when publishing begins. One
	// that dropped out before is not (Disconnects reports it).
	var live []*subscriber
	for i, c := range f.conns {
		if c != nil && !subs[i].ended.Load() {
			live = append(live, subs[i])
		}
	}
	if len(live) == 0 {
		return r, fmt.Errorf("every subscriber was disconnected before publishing: %v", f.drops.counts())
	}
	t0 := time.Now()
	start.Store(t0.UnixNano())
	pub.tl = newTimeline(t0, time.Duration(seconds)*time.Second)
	deadline := t0.Add(cfg.Duration)
	stop := prog.show(func() string {
		el := time.Since(t0)
		return fmt.Sprintf("publishing %s %4.1fs  %d published  %d api errors  %d delivered",
			bar(int(min(el, cfg.Duration)/time.Millisecond), int(cfg.Duration/time.Millisecond), 30),
			el.Seconds(), pub.ok.Load(), pub.errs.total(), received(live))
	})
	var maxLag time.Duration
	if cfg.Max {
		pub.runMax(ctx, cfg.Workers, deadline)
	} else {
		maxLag = pub.runRate(ctx, cfg.Workers, cfg.Rate, t0, deadline)
	}
	window := time.Since(t0)
	if ctx.Err() == nil {
		window = max(window, cfg.Duration) // the last call may end a little before the deadline
	}
	stop()

	// Drain: until everything has arrived, or cfg.Drain passes. With
	// failed calls, "everything" includes their messages, which may come
	// or not: counting only the expected ones, the arrival of a failed
	// call's message could end the drain before a successful one's.
	all := pub.issued.Load() * int64(len(live))
	if pub.errs.total() == 0 {
		all = pub.ok.Load() * int64(len(live))
	}
	drainEnd := time.Now().Add(cfg.Drain)
	for received(live) < all && time.Now().Before(drainEnd) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	cpuAfter, cpuErr := serverCPU(cfg.PID)
	if machineAfter, ok := readMachineTimes(); ok && machineOK {
		r.Machine = machineStats(machineBefore, machineAfter)
	}
	f.closeAll()

	// Count.
	issued := pub.issued.Load()
	d := account(live, issued, &pub.failed)
	var last int64
	d.Timeline = make([]int64, seconds)
	for _, s := range live {
		last = max(last, s.last)
		for i, n := range s.perSecond {
			d.Timeline[i] += n
		}
	}
	d.Timeline = trimZeros(d.Timeline)
	d.Seconds = max(time.Duration(last-t0.UnixNano()), window).Seconds()
	d.Rate = float64(d.Delivered) / d.Seconds
	r.Delivery = &d
	r.Publish = &PublishStats{
		Issued: issued, OK: issued - pub.failed.countBelow(issued), Errors: pub.errs.counts(),
		Seconds: window.Seconds(), MaxLagMS: float64(maxLag) / 1e6, Timeline: pub.tl.counts(),
	}
	r.Publish.APIErrors = issued - r.Publish.OK
	r.Publish.Rate = float64(r.Publish.OK) / window.Seconds()
	r.latency, r.apiLatency = lat.Snapshot(), pub.lat.Snapshot()
	r.Latency, r.APILatency = latencyStats(r.latency), latencyStats(r.apiLatency)
	if r.rxLatency = rxLat.Snapshot(); r.rxLatency.Total > 0 {
		r.KernelLatency = latencyStats(r.rxLatency)
	}
	if cfg.PID > 0 && cpuErr == nil {
		cpu := &CPUStats{Seconds: cpuAfter - cpuBefore}
		if cpu.Seconds > 0 {
			cpu.DeliveriesPerCPUSecond = float64(d.Delivered) / cpu.Seconds
			cpu.PublishesPerCPUSecond = float64(r.Publish.OK) / cpu.Seconds
		}
		r.CPU = cpu
	}
	r.Disconnects = f.drops.counts()
	r.Warnings = fanoutWarnings(r, cfg)
	if err := ctx.Err(); err != nil {
		return r, err
	}
	return r, cpuErr
}

// serverCPU returns the server's CPU seconds so far, 0 without a pid.
func serverCPU(pid int) (float64, error) {
	if pid <= 0 {
		return 0, nil
	}
	return procCPUSeconds(pid)
}

// stealWarning is the steal, in percent of the machine's CPU time, from
// which a run's figures are flagged. On a 2-core VM, scenario D's p99 was
// 8.8-11.2 ms in runs under 0.3% steal, 12.2-20 ms with 1-3%, and 17.6-43
// ms over 3% (BENCHMARKS.md).
const stealWarning = 1.0

// fanoutWarnings are what makes a run's figures doubtful.
func fanoutWarnings(r *Report, cfg FanoutConfig) []string {
	var w []string
	if n := r.Connect.Failed; n > 0 {
		w = append(w, fmt.Sprintf("%d of %d subscribers failed to connect: figures are for %d", n, cfg.N, r.Connect.Connected))
	}
	if n := len(r.Disconnects); n > 0 {
		total := 0
		for _, v := range r.Disconnects {
			total += v
		}
		w = append(w, fmt.Sprintf("%d subscribers were disconnected during the run (their missing messages count as lost)", total))
	}
	if want := cfg.Rate * cfg.Duration.Seconds(); !cfg.Max && float64(r.Publish.Issued) < 0.98*want {
		w = append(w, fmt.Sprintf("the publisher fell behind: %d of %.0f messages issued (more --workers?)", r.Publish.Issued, want))
	}
	if r.Delivery.Malformed > 0 {
		w = append(w, fmt.Sprintf("%d pushes had no usable ts and seq (another publisher on the channel?)", r.Delivery.Malformed))
	}
	if r.Delivery.Lost > 0 {
		w = append(w, fmt.Sprintf("%d deliveries lost (not received within the %v drain)", r.Delivery.Lost, cfg.Drain))
	}
	if m := r.Machine; m != nil && m.StealPercent >= stealWarning {
		w = append(w, fmt.Sprintf("the hypervisor gave %.1f%% of this machine's CPU time to others (steal): latency figures are spread by it; compare runs with little steal", m.StealPercent))
	}
	return w
}

// trimZeros drops trailing zero counts.
func trimZeros(c []int64) []int64 {
	for len(c) > 0 && c[len(c)-1] == 0 {
		c = c[:len(c)-1]
	}
	return c
}
