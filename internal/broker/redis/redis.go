// Package redis is the cluster broker over Redis: any number of wspush
// nodes share one Redis, and a message published on any node reaches the
// subscribers of every node.
//
// Fan-out uses Redis PUB/SUB: a node subscribes to a channel's Redis
// channel only while it has local subscribers of it, and every node
// listens on one broadcast channel. History lives in a Redis stream per
// channel beside a small hash holding the channel's epoch and top offset;
// one Lua script appends, numbers and publishes a message atomically, so
// every node receives a channel's messages in offset order. Presence is a
// sorted set per channel scored by expiry, refreshed by the node that
// added each entry: a crashed node's clients leave presence within the
// presence TTL.
//
// Guarantees: a publish that returned nil was accepted by Redis. A channel
// with history is delivered to every interested node exactly once, in
// offset order, including across a lost PUB/SUB connection: the node reads
// what it missed from the history when it notices a gap or reconnects (as
// long as Redis kept it). Channels without history, broadcasts and
// join/leave messages are at most once. One Redis server (or a Redis
// reached through a proxy); Sentinel and Redis Cluster are not supported.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/wspush/wspush"
)

// Defaults for Config.
const (
	// DefaultPrefix starts every Redis key and channel name of wspush, so
	// that it can share a Redis with other applications.
	DefaultPrefix = "wspush"
	// DefaultPresenceTTL is how long a presence entry lives without
	// refresh: a crashed node's clients leave presence within it.
	DefaultPresenceTTL = time.Minute
	// healthInterval is how often the PUB/SUB connection is checked with a
	// PING when no message comes.
	healthInterval = 3 * time.Second
	// maxBackoff bounds the wait between reconnection attempts.
	maxBackoff = 5 * time.Second
	// opTimeout bounds a Redis call made by the broker on its own.
	opTimeout = 5 * time.Second
	// DefaultReplaceAfter is Config.ReplaceAfter's default.
	DefaultReplaceAfter = 15 * time.Second
)

// Config configures a Broker.
type Config struct {
	// URL locates Redis: redis://[user:password@]host:port[/db], or
	// rediss:// for TLS.
	URL string
	// Prefix starts every key and channel name (default "wspush").
	Prefix string
	// PresenceTTL is the lifetime of a presence entry between refreshes
	// (default one minute); the node refreshes its entries every third of it.
	PresenceTTL time.Duration
	// ReplaceAfter is how long the PUB/SUB connection may stay silent,
	// its pings unanswered, before the node gives up on it and dials a
	// new one (default 15 s). A paused Redis answers again on the same
	// connection; a connection whose peer is gone without a word (a host
	// that died, a failover to another machine, a NAT that forgot it)
	// would otherwise be kept until the kernel gives up on it, some 15
	// minutes, with the node not ready all along.
	ReplaceAfter time.Duration
}

// Broker is the Redis broker. Create it with New, then run Run.
type Broker struct {
	cfg    Config
	logger *slog.Logger
	client *goredis.Client

	ready   atomic.Bool
	running atomic.Bool // Run runs: publishes are sent

	mu      sync.Mutex
	ps      *goredis.PubSub            // set while Run runs
	subs    map[string]bool            // the Redis channels subscribed, but for the broadcast one
	waiters map[string][]chan struct{} // SUBSCRIBE confirmations awaited, by Redis channel
	streams map[string]*position       // last delivered position, by wspush channel with history
	local   map[presenceKey]wspush.ClientInfo
	pubq    chan *pubReq  // publishes waiting for the pipeline
	stopped chan struct{} // closed when the publisher has ended, for good
	stop    sync.Once

	handler wspush.Handler
}

// position is the last offset delivered to this node for a channel, or,
// before the first, its floor: where the channel stood when the node
// subscribed (see markFloor).
type position struct {
	offset uint64
	epoch  string
	floor  bool
}

type presenceKey struct{ channel, clientID string }

var (
	_ wspush.Broker   = (*Broker)(nil)
	_ wspush.History  = (*Broker)(nil)
	_ wspush.Presence = (*Broker)(nil)
)

// New returns a Broker for cfg. It connects lazily: nothing is dialed
// before Run or the first call.
func New(logger *slog.Logger, cfg Config) (*Broker, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.PresenceTTL <= 0 {
		cfg.PresenceTTL = DefaultPresenceTTL
	}
	if cfg.ReplaceAfter <= 0 {
		cfg.ReplaceAfter = DefaultReplaceAfter
	}
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 3 * time.Second
	opts.WriteTimeout = 3 * time.Second
	opts.MaxRetries = 1
	opts.DisableIdentity = true
	// Maintenance notifications are a Redis Enterprise feature; off, the
	// client starts no background goroutine of its own.
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	setLogger(logger)
	return &Broker{
		cfg:     cfg,
		logger:  logger,
		client:  goredis.NewClient(opts),
		subs:    map[string]bool{},
		waiters: map[string][]chan struct{}{},
		streams: map[string]*position{},
		local:   map[presenceKey]wspush.ClientInfo{},
		pubq:    make(chan *pubReq, pubQueueSize),
		stopped: make(chan struct{}),
	}, nil
}

// Ready reports whether the node is connected to Redis and listening.
func (b *Broker) Ready() error {
	if !b.ready.Load() {
		return wspush.Errorf(wspush.ErrUnavailable, "redis unavailable")
	}
	return nil
}

// unavailable wraps a Redis failure as the domain's ErrUnavailable.
func unavailable(op string, err error) error {
	if errors.Is(err, wspush.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: redis %s: %v", wspush.ErrUnavailable, op, err)
}

// Run listens to Redis and delivers messages to h until ctx is done. It
// reconnects with backoff when the connection is lost, resubscribes, and
// reads from the history what it missed meanwhile.
func (b *Broker) Run(ctx context.Context, h wspush.Handler) error {
	b.mu.Lock()
	b.handler = h
	ps := b.client.Subscribe(ctx, b.broadcastChannel())
	b.ps = ps
	b.mu.Unlock()
	defer func() {
		b.ready.Store(false)
		b.mu.Lock()
		ps := b.ps
		b.ps = nil
		b.handler = nil
		for ch, ws := range b.waiters {
			for _, w := range ws {
				close(w)
			}
			delete(b.waiters, ch)
		}
		b.mu.Unlock()
		_ = ps.Close()
		_ = b.client.Close()
	}()

	// A blocked receive does not watch ctx: closing the connection ends it.
	stopClose := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		ps := b.ps
		b.mu.Unlock()
		if ps != nil { // nil: Run's return, which closes it, came first
			_ = ps.Close()
		}
	})
	defer stopClose()

	var wg sync.WaitGroup
	defer wg.Wait()
	refreshCtx, stopRefresh := context.WithCancel(ctx)
	defer stopRefresh()
	wg.Go(func() { b.refreshPresence(refreshCtx) })
	b.running.Store(true)
	defer b.running.Store(false)
	wg.Go(func() { b.runPublisher(refreshCtx) })

	backoff := 100 * time.Millisecond
	pinged := false
	resync := false  // a connection was lost: what came meanwhile must be read
	stalled := false // readiness was lost to silence, on a connection go-redis keeps
	var silentSince time.Time
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, healthInterval)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if isTimeout(err) && silentSince.IsZero() {
				silentSince = time.Now()
			}
			if isTimeout(err) && time.Since(silentSince) >= b.cfg.ReplaceAfter {
				ps = b.replacePubSub(ctx, time.Since(silentSince))
				silentSince, pinged, stalled, resync = time.Time{}, false, false, true
				b.ready.Store(false)
				continue
			}
			if isTimeout(err) && !pinged {
				pinged = true
				_ = ps.Ping(ctx)
				continue
			}
			if b.ready.Swap(false) {
				b.logger.Warn("redis connection lost; reconnecting", "err", err)
			}
			stalled = isTimeout(err)
			resync = true
			pinged = false
			if !stalled {
				silentSince = time.Time{}
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		pinged = false
		silentSince = time.Time{}
		backoff = 100 * time.Millisecond
		if stalled && !b.ready.Load() {
			// The connection that went silent (a paused Redis) answers
			// again. go-redis did not replace it, so no subscription
			// confirmation will come to make the node ready: its
			// subscriptions stand, and it is ready now.
			stalled = false
			if resync {
				b.resyncAll(ctx)
				resync = false
			}
			b.ready.Store(true)
			b.logger.Info("redis answers again", "addr", b.client.Options().Addr)
		}
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				b.confirm(m.Channel)
				if m.Channel == b.broadcastChannel() && !b.ready.Load() {
					if resync {
						b.resyncAll(ctx)
						resync = false
					}
					b.ready.Store(true)
					b.logger.Info("redis connected", "addr", b.client.Options().Addr)
				}
			}
		case *goredis.Message:
			b.deliver(ctx, m)
		case *goredis.Pong:
		}
	}
	return nil
}

// replacePubSub gives up on the PUB/SUB connection, silent for silence,
// and opens another that subscribes to every channel again; its
// confirmation of the broadcast channel makes the node ready, after a
// resync. It returns the new one.
//
// The new PubSub is in place before it dials, so that a Subscribe or an
// Unsubscribe meanwhile goes to it (and waits for the dial) rather than to
// the dead one. One that came between the copy of the channel set and the
// SUBSCRIBE is set right after it.
func (b *Broker) replacePubSub(ctx context.Context, silence time.Duration) *goredis.PubSub {
	b.logger.Warn("redis connection silent; replacing it", "silent", silence.Round(time.Second), "addr", b.client.Options().Addr)
	ps := b.client.Subscribe(ctx) // no channel: no dial yet
	b.mu.Lock()
	old := b.ps
	b.ps = ps
	chans := []string{b.broadcastChannel()}
	for key := range b.subs {
		chans = append(chans, key)
	}
	b.mu.Unlock()
	_ = old.Close()
	// An error is left for the receive loop to meet and retry; go-redis
	// records the channels all the same.
	_ = ps.Subscribe(ctx, chans...)
	b.mu.Lock()
	var left []string
	for _, key := range chans[1:] {
		if !b.subs[key] {
			left = append(left, key) // unsubscribed meanwhile
		}
	}
	b.mu.Unlock()
	if len(left) > 0 {
		_ = ps.Unsubscribe(ctx, left...)
	}
	return ps
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// loggerOnce routes go-redis's own log lines (a process-wide setting) to
// the first broker's logger, at debug level: the broker reports what
// matters itself.
var loggerOnce sync.Once

func setLogger(l *slog.Logger) {
	loggerOnce.Do(func() { goredis.SetLogger(slogAdapter{l}) })
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(ctx context.Context, format string, v ...any) {
	a.l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
