package redis

import (
	"context"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/envelope"
)

// Publishes are pipelined: concurrent Publish calls queue their requests,
// and one goroutine sends whatever is queued in one round trip. An idle
// broker sends a request at once; a busy one sends many per round trip.

// maxBatch bounds the publishes sent in one pipeline.
const maxBatch = 256

// pubQueueSize is how many publishes may wait for the pipeline; past it,
// Publish waits (its context permitting).
const pubQueueSize = 4096

// pubReq is one Publish waiting for the pipeline.
type pubReq struct {
	ctx  context.Context
	m    *wspush.Message
	opts wspush.PublishOptions
	pos  wspush.StreamPosition
	err  error
	done chan struct{}
}

// Publish publishes m to every node; with history, through publishScript.
// It returns once Redis has answered.
func (b *Broker) Publish(ctx context.Context, m *wspush.Message, opts wspush.PublishOptions) (wspush.StreamPosition, error) {
	if !b.running.Load() {
		return wspush.StreamPosition{}, wspush.Errorf(wspush.ErrUnavailable, "redis broker not running")
	}
	req := &pubReq{ctx: ctx, m: m, opts: opts, done: make(chan struct{})}
	select {
	case b.pubq <- req:
	case <-b.stopped:
		return wspush.StreamPosition{}, errStopped
	case <-ctx.Done():
		return wspush.StreamPosition{}, unavailable("publish", ctx.Err())
	}
	select {
	case <-req.done:
		return req.pos, req.err
	case <-b.stopped:
		// The publisher answered every request it took before it
		// stopped; one queued after its last look is answered here.
		select {
		case <-req.done:
			return req.pos, req.err
		default:
			return wspush.StreamPosition{}, errStopped
		}
	case <-ctx.Done():
		// The request may still be sent: the caller cannot know.
		return wspush.StreamPosition{}, unavailable("publish", ctx.Err())
	}
}

// errStopped answers publishes after the broker's Run has ended.
var errStopped = wspush.Errorf(wspush.ErrUnavailable, "redis broker stopped")

// runPublisher sends queued publishes until ctx is done, then fails what
// is left. Run owns it.
func (b *Broker) runPublisher(ctx context.Context) {
	defer b.stop.Do(func() { close(b.stopped) })
	batch := make([]*pubReq, 0, maxBatch)
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case req := <-b.pubq:
					req.err = errStopped
					close(req.done)
				default:
					return
				}
			}
		case req := <-b.pubq:
			batch = append(batch[:0], req)
		fill:
			for len(batch) < maxBatch {
				select {
				case req := <-b.pubq:
					batch = append(batch, req)
				default:
					break fill
				}
			}
			b.sendBatch(ctx, batch)
			clear(batch)
		}
	}
}

// sendBatch sends batch in one pipeline, loading the script first when
// Redis lost it (after a restart).
func (b *Broker) sendBatch(ctx context.Context, batch []*pubReq) {
	live := batch[:0:0]
	for _, req := range batch {
		if err := req.ctx.Err(); err != nil {
			req.err = unavailable("publish", err)
			close(req.done)
			continue
		}
		live = append(live, req)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	cmds, err := b.pipeline(ctx, live)
	if err != nil && isNoScript(err) {
		if lerr := publishScript.Load(ctx, b.client).Err(); lerr == nil {
			// Send again only the script calls that failed: the plain
			// publishes of the batch went out, and must not twice.
			var again []*pubReq
			var at []int
			for i, c := range cmds {
				if isNoScript(c.Err()) {
					again, at = append(again, live[i]), append(at, i)
				}
			}
			retried, rerr := b.pipeline(ctx, again)
			for j, i := range at {
				cmds[i] = retried[j]
			}
			err = rerr
		}
	}
	for i, req := range live {
		switch c := cmds[i].(type) {
		case *goredis.Cmd:
			if res, cerr := c.Slice(); cerr != nil {
				req.err = unavailable("publish", cerr)
			} else {
				off, _ := res[0].(int64)
				epoch, _ := res[1].(string)
				req.m.Offset, req.m.Epoch = uint64(off), epoch
				req.pos = req.m.Position()
			}
		case *goredis.IntCmd:
			if cerr := c.Err(); cerr != nil {
				req.err = unavailable("publish", cerr)
			}
		default:
			req.err = unavailable("publish", err)
		}
		close(req.done)
	}
}

// pipeline queues one command per request and executes them together.
func (b *Broker) pipeline(ctx context.Context, reqs []*pubReq) ([]goredis.Cmder, error) {
	cmds := make([]goredis.Cmder, len(reqs))
	_, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, req := range reqs {
			cmds[i] = b.queuePublish(ctx, p, req.m, req.opts)
		}
		return nil
	})
	return cmds, err
}

// queuePublish queues m's publish on p.
func (b *Broker) queuePublish(ctx context.Context, p goredis.Pipeliner, m *wspush.Message, opts wspush.PublishOptions) goredis.Cmder {
	if opts.HistorySize <= 0 || m.Broadcast || m.Kind != wspush.KindPublication {
		ch := b.broadcastChannel()
		if !m.Broadcast {
			ch = b.pubsubChannel(m.Channel)
		}
		return p.Publish(ctx, ch, envelope.Encode(m))
	}
	ttl := opts.HistoryTTL
	if ttl <= 0 {
		ttl = 24 * time.Hour // history needs an end; the namespace's TTL is normally set
	}
	keys := []string{b.streamKey(m.Channel), b.metaKey(m.Channel), b.pubsubChannel(m.Channel)}
	return publishScript.EvalSha(ctx, p, keys, []byte(m.Data), opts.HistorySize, ttl.Milliseconds(), newEpoch(), time.Now().UnixMilli())
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
