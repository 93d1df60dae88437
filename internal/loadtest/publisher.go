package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// publisher publishes payloads with sequence numbers through the HTTP API
// on keep-alive connections, one per worker.
type publisher struct {
	api, key       string
	contentType    string
	prefix, suffix []byte // around the payload in a request body
	payload        int
	client         *http.Client

	issued atomic.Int64 // sequence numbers handed out; every one is attempted
	ok     atomic.Int64
	mu     sync.Mutex
	failed seqSet // sequence numbers whose call failed
	errs   tally
	lat    Histogram // call start to response read
	tl     *timeline // successful publishes per second
}

func newPublisher(t Target, payload, workers int) *publisher {
	prefix, suffix := t.Proto.bodyAround(t.Channel)
	return &publisher{
		api: t.API, key: t.APIKey, contentType: t.Proto.contentType(),
		prefix: prefix, suffix: suffix, payload: payload,
		failed: newSeqSet(0),
		client: &http.Client{Timeout: t.Timeout, Transport: &http.Transport{
			Proxy:               nil, // never through a proxy: the target is checked to be local
			DialContext:         (&net.Dialer{Timeout: t.Timeout}).DialContext,
			MaxIdleConns:        2 * workers,
			MaxIdleConnsPerHost: 2 * workers,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		}},
	}
}

// publish makes one publish call for seq. The payload's timestamp is taken
// right before the call, after the request is built.
func (p *publisher) publish(ctx context.Context, worker int, seq int64, scratch []byte) {
	body := make([]byte, 0, len(p.prefix)+max(p.payload, minPayload(seq))+len(p.suffix))
	body = append(body, p.prefix...)
	body, at := appendPayload(body, seq, p.payload)
	body = append(body, p.suffix...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.api, bytes.NewReader(body))
	if err != nil {
		p.fail(seq, err)
		return
	}
	req.Header.Set("Content-Type", p.contentType)
	if p.key != "" {
		req.Header.Set("Authorization", "Bearer "+p.key)
	}
	start := time.Now()
	if !putTimestamp(body[at:], start.UnixNano()) {
		p.fail(seq, errors.New("the clock is outside 2001-2286"))
		return
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.fail(seq, err)
		return
	}
	n, _ := io.ReadFull(resp.Body, scratch)
	_, err = io.Copy(io.Discard, resp.Body) // read to the end so the connection is reused
	resp.Body.Close()
	end := time.Now()
	p.lat.Record(worker, end.Sub(start))
	switch {
	case resp.StatusCode/100 != 2:
		p.fail(seq, fmt.Errorf("HTTP %d: %s", resp.StatusCode, truncate(bytes.TrimSpace(scratch[:n]), 120)))
	case err != nil:
		p.fail(seq, err)
	default:
		p.ok.Add(1)
		p.tl.add(end.UnixNano(), 1)
	}
}

func (p *publisher) fail(seq int64, err error) {
	p.errs.add(err)
	p.mu.Lock()
	p.failed.add(seq)
	p.mu.Unlock()
}

// scratchSize is each worker's buffer for the start of a response body
// (kept for error messages).
const scratchSize = 512

// runMax publishes from workers goroutines, each calling as fast as the
// server answers, until deadline or ctx is done.
func (p *publisher) runMax(ctx context.Context, workers int, deadline time.Time) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			scratch := make([]byte, scratchSize)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				p.publish(ctx, w, p.issued.Add(1)-1, scratch)
			}
		})
	}
	wg.Wait()
}

// lagLimit is how far past the deadline a fixed-rate publisher that fell
// behind goes on catching up before it gives up the rest of its schedule.
const lagLimit = time.Second

// runRate publishes rate messages per second from start until deadline on
// an absolute schedule (message i is due at start + i/rate, so timer
// slack never accumulates into drift), handing each to one of workers
// goroutines so that a slow call does not delay the next. It returns how
// late, at worst, a message was handed over.
func (p *publisher) runRate(ctx context.Context, workers int, rate float64, start, deadline time.Time) time.Duration {
	jobs := make(chan int64) // unbuffered: a message waits for a free worker, and its lag shows
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			scratch := make([]byte, scratchSize)
			for seq := range jobs {
				p.publish(ctx, w, seq, scratch)
			}
		})
	}
	var maxLag time.Duration
	interval := float64(time.Second) / rate
	timer := time.NewTimer(time.Hour)
	timer.Stop()
schedule:
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(float64(i) * interval))
		if !due.Before(deadline) || time.Now().After(deadline.Add(lagLimit)) {
			break // done, or so far behind that the rate is not being kept anyway
		}
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break schedule
			}
		}
		seq := p.issued.Add(1) - 1
		select {
		case jobs <- seq:
		case <-ctx.Done():
			p.fail(seq, ctx.Err())
			break schedule
		}
		maxLag = max(maxLag, time.Since(due))
	}
	close(jobs)
	wg.Wait()
	return maxLag
}
