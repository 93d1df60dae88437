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
// in order.
package nats

import (
	"context"
	"fmt"
	"log/slog"
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
}

// Broker is the NATS broker. Create it with New, then run Run.
type Broker struct {
	cfg    Config
	logger *slog.Logger
	ready  atomic.Bool

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
	return &Broker{cfg: cfg, logger: logger, subs: map[string]*natsgo.Subscription{}}, nil
}

// subject maps a channel to its subject. A '.' separates subject tokens,
// so it is written '!', which no channel name holds.
func (b *Broker) subject(channel string) string {
	return b.cfg.Prefix + ".ch." + strings.ReplaceAll(channel, ".", "!")
}

func (b *Broker) broadcastSubject() string { return b.cfg.Prefix + ".broadcast" }

// Run connects to NATS and delivers messages to h until ctx is done.
// The NATS client reconnects by itself and resubscribes.
func (b *Broker) Run(ctx context.Context, h wspush.Handler) error {
	nc, err := natsgo.Connect(b.cfg.URL,
		natsgo.Name("wspush"),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(250*time.Millisecond),
		natsgo.RetryOnFailedConnect(true),
		natsgo.ConnectHandler(func(*natsgo.Conn) { b.setReady(true, nil) }),
		natsgo.ReconnectHandler(func(*natsgo.Conn) { b.setReady(true, nil) }),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) { b.setReady(false, err) }),
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
	if _, err := b.subscribe(b.broadcastSubject(), "", true); err != nil {
		nc.Close()
		return err
	}
	if nc.IsConnected() {
		b.setReady(true, nil)
	}
	<-ctx.Done()
	b.ready.Store(false)
	b.mu.Lock()
	b.nc, b.handler = nil, nil
	clear(b.subs)
	b.mu.Unlock()
	nc.Close() // waits for the subscription goroutines
	return nil
}

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

// subscribe subscribes to subject, delivering to the handler as messages of
// channel (empty: broadcast), and waits for the server to know. Without a
// connection it fails, unless early, when the subscription waits for one.
func (b *Broker) subscribe(subject, channel string, early bool) (*natsgo.Subscription, error) {
	b.mu.Lock()
	nc := b.nc
	b.mu.Unlock()
	if nc == nil || (!early && !nc.IsConnected()) {
		return nil, wspush.Errorf(wspush.ErrUnavailable, "nats unavailable")
	}
	sub, err := nc.Subscribe(subject, func(msg *natsgo.Msg) {
		b.mu.Lock()
		h := b.handler
		b.mu.Unlock()
		if h == nil {
			return
		}
		m, err := envelope.Decode(channel, string(msg.Data))
		if err != nil {
			b.logger.Warn("dropping a malformed nats message", "subject", msg.Subject, "err", err)
			return
		}
		h.HandleMessage(m)
	})
	if err == nil && nc.IsConnected() {
		err = nc.FlushTimeout(5 * time.Second) // the server has the subscription
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
func (b *Broker) Subscribe(_ context.Context, channel string) error {
	sub, err := b.subscribe(b.subject(channel), channel, false)
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
		return wspush.StreamPosition{}, fmt.Errorf("%w: nats publish: %v", wspush.ErrUnavailable, err)
	}
	return wspush.StreamPosition{}, nil
}
