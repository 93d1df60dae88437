package loadtest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// maxInflight bounds the handshakes outstanding at once while ramping, so
// that a slow server sees a queue of at most this many, not all N.
const maxInflight = 512

// ConnectStats are the figures of the connect phase.
type ConnectStats struct {
	Attempted int            `json:"attempted"`
	Connected int            `json:"connected"` // handshake done and subscription confirmed
	Failed    int            `json:"failed"`
	Failures  map[string]int `json:"failures,omitempty"` // by reason
	Seconds   float64        `json:"seconds"`            // first dial to last attempt finished
	Rate      float64        `json:"per_second"`         // connected / seconds
	Timeline  []int64        `json:"timeline,omitempty"` // connections completed in each second
}

// fleet is the set of connections a run opened. Each connected one runs
// in its own goroutine, counted in wg, until closeAll closes it.
type fleet struct {
	conns    []*conn // nil where the attempt failed
	wg       sync.WaitGroup
	stopping atomic.Bool // set before closeAll: later disconnects are ours
	drops    tally       // disconnects before closeAll
	closed   sync.Once
}

// openAll dials and subscribes n connections, at most ramp new ones per
// second (0: no pacing) and maxInflight at once, showing progress; with
// stamps, connections read with kernel receive timestamps. It
// returns when every attempt has finished or ctx is done. run(i, c) runs
// on connection i's goroutine once it is subscribed, and returns when the
// connection ends; an error it returns before closeAll counts as a drop.
func openAll(ctx context.Context, t Target, n int, ramp float64, readBuf int, stamps bool, prog *Progress,
	run func(i int, c *conn) error) (*fleet, ConnectStats) {
	f := &fleet{conns: make([]*conn, n)}
	d := newDialer(t, readBuf)
	d.stamps = stamps
	var fails tally
	var done, ok atomic.Int64
	start := time.Now()
	tl := newTimeline(start, time.Hour)
	stop := prog.show(func() string {
		el := time.Since(start).Seconds()
		return fmt.Sprintf("connecting %s %d/%d  %.0f/s  %d failed", bar(int(done.Load()), n, 30),
			done.Load(), n, float64(ok.Load())/max(el, 1e-3), fails.total())
	})

	var ready sync.WaitGroup
	sem := make(chan struct{}, maxInflight)
	pace := newPacer(start, ramp)
	attempted := 0
dialing:
	for i := range n {
		if err := pace.wait(ctx, i); err != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break dialing
		}
		attempted++
		ready.Add(1)
		f.wg.Go(func() {
			c, err := d.dial(ctx, i)
			if err == nil {
				if err = c.subscribe(t.Proto, t.Channel, t.Timeout); err != nil {
					c.close()
				}
			}
			<-sem
			done.Add(1)
			tl.add(time.Now().UnixNano(), 1)
			if err != nil {
				fails.add(err)
				ready.Done()
				return
			}
			ok.Add(1)
			f.conns[i] = c
			ready.Done()
			if err := run(i, c); !f.stopping.Load() {
				f.drops.add(err)
			}
		})
	}
	ready.Wait()
	elapsed := time.Since(start)
	stop()
	st := ConnectStats{
		Attempted: attempted,
		Connected: int(ok.Load()),
		Failed:    attempted - int(ok.Load()),
		Failures:  fails.counts(),
		Seconds:   elapsed.Seconds(),
		Rate:      float64(ok.Load()) / max(elapsed.Seconds(), 1e-9),
		Timeline:  tl.counts(),
	}
	return f, st
}

// closeAll closes every connection and waits for their goroutines. Calls
// after the first do nothing.
func (f *fleet) closeAll() {
	f.closed.Do(f.close)
}

func (f *fleet) close() {
	f.stopping.Store(true)
	var wg sync.WaitGroup
	const closers = 8 // close frames go out in parallel; each waits at most briefly
	for k := range closers {
		wg.Go(func() {
			for i := k; i < len(f.conns); i += closers {
				if c := f.conns[i]; c != nil {
					c.close()
				}
			}
		})
	}
	wg.Wait()
	f.wg.Wait()
}

// pacer spaces events rate per second on an absolute schedule from
// start, so that delays do not accumulate; after a stall it catches up by
// at most a few milliseconds' worth instead of bursting.
type pacer struct {
	start    time.Time
	interval float64 // nanoseconds; 0: no pacing
	shift    time.Duration
}

func newPacer(start time.Time, rate float64) *pacer {
	p := &pacer{start: start}
	if rate > 0 {
		p.interval = float64(time.Second) / rate
	}
	return p
}

// at is when event i is due.
func (p *pacer) at(i int) time.Time {
	return p.start.Add(time.Duration(float64(i)*p.interval) + p.shift)
}

// wait blocks until event i is due or ctx is done.
func (p *pacer) wait(ctx context.Context, i int) error {
	if p.interval == 0 {
		return ctx.Err()
	}
	const catchUp = 10 * time.Millisecond
	due := p.at(i)
	if late := time.Since(due); late > catchUp {
		p.shift += late - catchUp
		due = p.at(i)
	}
	return sleepUntil(ctx, due)
}

// sleepUntil waits until t or until ctx is done.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
