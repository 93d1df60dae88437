// Package native implements wspush's own protocol, v1 (docs/protocol.md):
// one JSON object per WebSocket text frame; commands subscribe, unsubscribe,
// publish and ping with replies; pushes of type message and broadcast.
//
// It sits between the ws transport, which hands it complete frames, and
// the hub, which it subscribes connections to and publishes through.
package native

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/ws"
)

// Defaults for Config.
const (
	// DefaultMaxSubscriptions bounds the channels one connection may
	// subscribe to: enough for rich pages, small enough that one client
	// cannot grow the hub without limit.
	DefaultMaxSubscriptions = 256
	// DefaultRateLimit is the commands per second a connection may send on
	// average; a push client sends few.
	DefaultRateLimit = 100
	// DefaultRateBurst is the commands a connection may send at once.
	DefaultRateBurst = 200
	// maxStrikes is how many malformed frames in a row close a connection
	// with 4002.
	maxStrikes = 20
	// commandTimeout bounds a command's call to the broker.
	commandTimeout = 10 * time.Second
	// maxHistoryLimit bounds the messages one history call returns.
	maxHistoryLimit = 1000
	// maxHeld bounds the pushes a channel may hold while its subscription
	// is being set up (recovery runs meanwhile); past it the client is a
	// slow consumer.
	maxHeld = 4096
)

// Config holds the protocol's settings. Zero fields take the defaults.
type Config struct {
	Namespaces       wspush.Namespaces
	MaxSubscriptions int     // channels per connection
	MaxChannelLength int     // bytes in a channel name, at most wspush.MaxChannelLength
	RateLimit        float64 // commands per second per connection
	RateBurst        int     // commands at once per connection
	PingInterval     time.Duration
	// History reads channel history, for recovery and the history op; nil
	// when the broker keeps none.
	History wspush.History
	// Presence tracks who is subscribed; nil when the broker cannot.
	Presence wspush.Presence
	// PresenceTTL is how long a presence entry lasts without refresh (0:
	// until removed; the memory broker needs no refresh).
	PresenceTTL time.Duration
	// RecoveryMaxMessages and ReplyMaxBytes keep what one command sends
	// within a connection's send queue, whose overflow closes the
	// connection (4001): a recovery of more messages or more bytes
	// answers "recovered":false instead, and a history reply holds fewer
	// messages than asked rather than more bytes. Zero fields take half
	// the ws transport's default queue bounds; serve passes half of its
	// queue_max_messages and queue_max_bytes.
	RecoveryMaxMessages int
	ReplyMaxBytes       int
}

// Protocol runs the native protocol on WebSocket connections.
type Protocol struct {
	cfg    Config
	hub    *hub.Hub
	logger *slog.Logger
	enc    *Encoder
}

// New returns the protocol over h.
func New(logger *slog.Logger, cfg Config, h *hub.Hub) *Protocol {
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.MaxChannelLength <= 0 || cfg.MaxChannelLength > wspush.MaxChannelLength {
		cfg.MaxChannelLength = wspush.MaxChannelLength
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = DefaultRateBurst
	}
	if cfg.RecoveryMaxMessages <= 0 {
		cfg.RecoveryMaxMessages = ws.DefaultQueueMaxMessages / 2
	}
	if cfg.ReplyMaxBytes <= 0 {
		cfg.ReplyMaxBytes = ws.DefaultQueueMaxBytes / 2
	}
	return &Protocol{cfg: cfg, hub: h, logger: logger, enc: &Encoder{}}
}

// Encoder returns the protocol's message encoder.
func (p *Protocol) Encoder() *Encoder { return p.enc }

// checkChannel validates a channel name and resolves its namespace.
func (p *Protocol) checkChannel(channel string) (wspush.ChannelOptions, error) {
	if channel == "" {
		return wspush.ChannelOptions{}, wspush.Errorf(wspush.ErrBadRequest, "missing channel")
	}
	if !wspush.ValidChannel(channel, p.cfg.MaxChannelLength) {
		return wspush.ChannelOptions{}, wspush.Errorf(wspush.ErrBadRequest, "invalid channel name: use 1-"+strconv.Itoa(p.cfg.MaxChannelLength)+" bytes of A-Z a-z 0-9 _ - = @ , . ; : # $")
	}
	opts, ok := p.cfg.Namespaces.Lookup(channel)
	if !ok {
		return opts, wspush.Errorf(wspush.ErrNotFound, "unknown namespace "+strconv.Quote(wspush.Namespace(channel)))
	}
	return opts, nil
}

// Accept validates an upgrade request before the handshake and returns the
// channels of its ?channels= parameter.
func (p *Protocol) Accept(r *http.Request) ([]string, error) {
	q := r.URL.Query().Get("channels")
	if q == "" {
		return nil, nil
	}
	var chans []string
	seen := map[string]bool{}
	for c := range strings.SplitSeq(q, ",") {
		if c == "" || seen[c] {
			continue
		}
		if _, err := p.checkChannel(c); err != nil {
			return nil, wspush.Errorf(err.(*wspush.Error).Kind, "channels: "+c+": "+err.Error())
		}
		seen[c] = true
		chans = append(chans, c)
	}
	if len(chans) > p.cfg.MaxSubscriptions {
		return nil, wspush.Errorf(wspush.ErrBadRequest, "channels: more than "+strconv.Itoa(p.cfg.MaxSubscriptions)+" channels")
	}
	return chans, nil
}

// Open starts a session on a freshly upgraded connection: it subscribes
// the channels Accept returned, then sends the welcome frame. Messages for
// those channels follow the welcome, never precede it, and none published
// once the subscription is in place is missed.
func (p *Protocol) Open(c *ws.Conn, channels []string) ws.Session {
	s := &session{
		proto:  p,
		conn:   c,
		tokens: float64(p.cfg.RateBurst),
		refill: time.Now(),
	}
	s.info.ClientID = newClientID()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	var joined []string
	var failed []error
	for _, ch := range channels {
		opts, _ := p.checkChannel(ch) // Accept checked
		if err := s.join(ctx, ch, opts); err != nil {
			failed = append(failed, err)
			continue
		}
		joined = append(joined, ch)
	}
	if len(failed) > 0 {
		// A reply would answer no command (a client that sends commands
		// without ids would take it for the reply to its first one), and a
		// welcome would promise subscriptions that are not all there: the
		// connection ends, with a code that says to try again, and then
		// the other subscriptions are undone. Closed first: a closing
		// connection takes no more frames, and the undoing can wait on
		// the hub, which meanwhile still delivers.
		c.Close(ws.CloseTryAgainLater, "subscribe failed: broker unavailable, retry")
		p.logger.Warn("closed a connection whose ?channels= subscriptions failed", "err", failed[0])
		for _, ch := range joined {
			s.discard(ch)
			s.unsubscribe(ctx, ch)
		}
		return s
	}
	c.Send(p.enc.welcome(s.info.ClientID, s.channelList(), p.cfg.PingInterval))
	p.hub.Connect(s) // broadcasts from now on: after the welcome
	for _, ch := range joined {
		s.release(ch, wspush.StreamPosition{})
		s.announce(ctx, ch, wspush.KindJoin)
	}
	return s
}

// newClientID returns a random connection identifier.
func newClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
