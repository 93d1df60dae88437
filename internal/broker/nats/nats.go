// Package nats is the cluster broker over NATS core: any number of wspush
// nodes share a NATS server (or cluster), and a message published on any
// node reaches the subscribers of every node.
//
// Each wspush channel is a NATS subject; a node subscribes to a subject
// only while it has local subscribers of the channel, and every node
// listens on one broadcast subject.
//
// Guarantees: at most once. NATS core keeps nothing, so this broker has no
// history and no presence: a namespace that asks for either is refused at
// start. A publish that returned nil is in the NATS client's buffer, not
// necessarily delivered; messages one node publishes reach each other node
// in order, across channels and broadcasts too: every subscription feeds
// one queue, which one goroutine delivers (the NATS client would otherwise
// run a goroutine per subscription, each delivering on its own).
package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/envelope"
)

// DefaultPrefix starts every subject of wspush.
const DefaultPrefix = "wspush"

// Config configures a Broker.
type Config struct {
	// URL locates NATS: nats://host:4222, or several, comma-separated.
	URL string
	// Prefix starts every subject (default "wspush").
	Prefix string
	// MaxMessage is the largest message the node may publish (its
	// max_publish_size and max_frame_size); the broker warns at connect
	// when NATS takes less. 0: no check.
	MaxMessage int64
}

// Timing of the connection's health check: a connection that answers no
// ping for this many intervals is given up and dialled again, so that a
// NATS gone silent without a close (a host that died, a NAT that forgot
// the connection) is noticed in seconds, not the client's default minutes.
const (
	pingInterval        = 2 * time.Second
	maxPingsOutstanding = 3
)

// queueSize bounds the messages received and not yet delivered. Past it,
// the NATS client drops messages and reports a slow consumer.
const queueSize = 1 << 16

// Broker is the NATS broker. Create it with New, then run Run.
type Broker struct {
	cfg    Config
	logger *slog.Logger
	ready  atomic.Bool
	in     chan *natsgo.Msg // every subscription's messages, in arrival order

	mu      sync.Mutex
	nc      *natsgo.Conn // set while Run runs
	handler wspush.Handler
	subs    map[string]*natsgo.Subscription
}

var _ wspush.Broker = (*Broker)(nil)

// New returns a Broker for cfg; it connects when Run starts.
func New(logger *slog.Logger, cfg Config) (*Broker, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.URL == "" {
		return nil, fmt.Errorf("nats url is empty")
	}
	return &Broker{cfg: cfg, logger: logger, in: make(chan *natsgo.Msg, queueSize), subs: map[string]*natsgo.Subscription{}}, nil
}

// subject maps a channel to its subject. A '.' separates subject tokens,
// so it is written '!', which no channel name holds.
func (b *Broker) subject(channel string) string {
	return b.cfg.Prefix + ".ch." + strings.ReplaceAll(channel, ".", "!")
}

func (b *Broker) broadcastSubject() string { return b.cfg.Prefix + ".broadcast" }

// channelOf maps a subject back to its channel: "" for the broadcast
// subject, ok false for a subject that is neither.
func (b *Broker) channelOf(subject string) (channel string, ok bool) {
	if subject == b.broadcastSubject() {
		return "", true
	}
	rest, ok := strings.CutPrefix(subject, b.cfg.Prefix+".ch.")
	if !ok || rest == "" {
		return "", false
	}
	return strings.ReplaceAll(rest, "!", "."), true
}

// SerialDelivery reports that the broker delivers every message from one
// goroutine, so that the hub queues even small fan-outs for its writers
// (hub.SerialBroker).
func (b *Broker) SerialDelivery() bool { return true }

// Run connects to NATS and delivers messages to h until ctx is done.
// The NATS client reconnects by itself and resubscribes.
func (b *Broker) Run(ctx context.Context, h wspush.Handler) error {
	nc, err := natsgo.Connect(b.cfg.URL,
		natsgo.Name("wspush"),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(250*time.Millisecond),
		natsgo.RetryOnFailedConnect(true),
		natsgo.PingInterval(pingInterval),
		natsgo.MaxPingsOutstanding(maxPingsOutstanding),
		natsgo.ConnectHandler(func(nc *natsgo.Conn) { b.checkPayload(nc); b.setReady(true, nil) }),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) { b.checkPayload(nc); b.setReady(true, nil) }),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) { b.setReady(false, err) }),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			// ErrSlowConsumer: the queue was full, messages were dropped.
			b.logger.Error("nats error: messages may be lost", "subject", subject, "err", err)
		}),
	)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	b.mu.Lock()
	b.nc, b.handler = nc, h
	b.mu.Unlock()
	// Made even before the first connection: the client sends it once
	// connected (RetryOnFailedConnect), and Run waits for NATS as the
	// other brokers wait for their servers.
	_, err = b.subscribe(ctx, b.broadcastSubject(), true)
	if err == nil {
		if nc.IsConnected() {
			b.setReady(true, nil)
		}
		b.deliver(ctx, h)
	}
	b.ready.Store(false)
	b.mu.Lock()
	b.nc, b.handler = nil, nil
	clear(b.subs)
	b.mu.Unlock()
	nc.Close()
	if ctx.Err() != nil {
		return nil // stopped, even while the first subscription was being made
	}
	return err
}

// deliver hands the queued messages to h, in arrival order, until ctx is
// done. It is Run's own goroutine.
func (b *Broker) deliver(ctx context.Context, h wspush.Handler) {
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-b.in:
			channel, ok := b.channelOf(msg.Subject)
			if !ok {
				continue
			}
			m, err := envelope.Decode(channel, string(msg.Data))
			if err != nil {
				b.logger.Warn("dropping a malformed nats message", "subject", msg.Subject, "err", err)
				continue
			}
			h.HandleMessage(m)
		}
	}
}

// checkPayload warns when NATS takes smaller messages than the node may
// publish: those publishes would be refused (413).
func (b *Broker) checkPayload(nc *natsgo.Conn) {
	if limit := nc.MaxPayload(); b.cfg.MaxMessage > 0 && limit > 0 && b.cfg.MaxMessage+envelopeOverhead > limit {
		b.logger.Warn("NATS takes smaller messages than this node may publish: larger publishes are refused (413); raise max_payload in NATS or lower max_publish_size",
			"nats_max_payload", limit, "max_message", b.cfg.MaxMessage)
	}
}

// envelopeOverhead bounds what the envelope adds to a message's data.
const envelopeOverhead = 600

func (b *Broker) setReady(ok bool, err error) {
	if b.ready.Swap(ok) != ok {
		if ok {
			b.logger.Info("nats connected")
		} else {
			b.logger.Warn("nats connection lost; reconnecting", "err", err)
		}
	}
}

// Ready reports whether the node is connected to NATS.
func (b *Broker) Ready() error {
	if !b.ready.Load() {
		return wspush.Errorf(wspush.ErrUnavailable, "nats unavailable")
	}
	return nil
}

// subscribe subscribes to subject, its messages going to the queue, and
// waits (within ctx, at most 5 s) for the server to know. Without a
// connection it fails, unless early, when the subscription waits for one.
func (b *Broker) subscribe(ctx context.Context, subject string, early bool) (*natsgo.Subscription, error) {
	b.mu.Lock()
	nc := b.nc
	b.mu.Unlock()
	if nc == nil || (!early && !nc.IsConnected()) {
		return nil, wspush.Errorf(wspush.ErrUnavailable, "nats unavailable")
	}
	sub, err := nc.ChanSubscribe(subject, b.in)
	if err == nil && nc.IsConnected() {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = nc.FlushWithContext(fctx) // the server has the subscription
		cancel()
	}
	if err != nil {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
		return nil, fmt.Errorf("%w: nats subscribe: %v", wspush.ErrUnavailable, err)
	}
	return sub, nil
}

// Subscribe subscribes this node to channel's subject.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	sub, err := b.subscribe(ctx, b.subject(channel), false)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.subs[channel] = sub
	b.mu.Unlock()
	return nil
}

// Unsubscribe unsubscribes this node from channel's subject.
func (b *Broker) Unsubscribe(_ context.Context, channel string) error {
	b.mu.Lock()
	sub := b.subs[channel]
	delete(b.subs, channel)
	b.mu.Unlock()
	if sub == nil {
		return nil
	}
	if err := sub.Unsubscribe(); err != nil {
		return fmt.Errorf("%w: nats unsubscribe: %v", wspush.ErrUnavailable, err)
	}
	return nil
}

// Publish publishes m. NATS keeps no history: the options are ignored
// (start refuses namespaces with history on this broker).
func (b *Broker) Publish(_ context.Context, m *wspush.Message, _ wspush.PublishOptions) (wspush.StreamPosition, error) {
	b.mu.Lock()
	nc := b.nc
	b.mu.Unlock()
	if nc == nil || !b.ready.Load() {
		return wspush.StreamPosition{}, wspush.Errorf(wspush.ErrUnavailable, "nats unavailable")
	}
	subject := b.broadcastSubject()
	if !m.Broadcast {
		subject = b.subject(m.Channel)
	}
	if err := nc.Publish(subject, envelope.Encode(m)); err != nil {
		if errors.Is(err, natsgo.ErrMaxPayload) {
			// Retrying would not help: too large for this NATS.
			return wspush.StreamPosition{}, wspush.Errorf(wspush.ErrTooLarge, "message too large for NATS (its max_payload is "+strconv.FormatInt(nc.MaxPayload(), 10)+" bytes)")
		}
		return wspush.StreamPosition{}, fmt.Errorf("%w: nats publish: %v", wspush.ErrUnavailable, err)
	}
	return wspush.StreamPosition{}, nil
}
