// Package hub holds this node's subscriptions: which local connections
// subscribe to which channel. It delivers each message the broker hands it
// to the local subscribers, encoding it once per protocol and never blocking
// on a connection. It knows nothing of HTTP or WebSockets.
package hub

import (
	"context"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/wspush/wspush"
)

// Subscriber is one connection as the hub sees it.
type Subscriber interface {
	// ID identifies the subscriber uniquely within the node.
	ID() uint64
	// Encoder returns the encoder of the subscriber's protocol. Subscribers
	// with the same Encoder share the encoded frame of a message.
	Encoder() Encoder
	// Send queues frame, m encoded by the Encoder, and returns at once. It
	// reports whether the frame was queued. m is shared and read-only.
	Send(m *wspush.Message, frame []byte) bool
}

// A NowSender is a Subscriber that can also write a frame at once, in the
// caller's goroutine, without waiting for its socket. The hub uses it for
// small fan-outs, where waking a writer costs more than the write.
type NowSender interface {
	Subscriber
	// SendNow is Send, but writes the frame before it returns when it
	// can: not when a write to the subscriber is under way, nor when the
	// subscriber cannot write at once at all (then SendNow is Send); what
	// a full socket does not take is written later, as with Send.
	SendNow(m *wspush.Message, frame []byte) bool
}

// DirectFanout is the largest fan-out whose NowSenders are sent with
// SendNow: a channel of one user's tabs or devices. A larger one goes
// through the writers' queues, where its writes batch and spread over
// the cores.
const DirectFanout = 4

// A SerialBroker is a Broker that delivers every message from one
// goroutine, such as the Redis broker's single subscriber connection. The
// hub then writes no fan-out in the delivering goroutine, not even a small
// one: there, the writes of every channel would wait behind each other on
// one core, where queued they spread over the writers.
type SerialBroker interface {
	Broker
	// SerialDelivery reports whether the broker delivers from one goroutine.
	SerialDelivery() bool
}

// Encoder turns a message into the frame its protocol sends. The frame is
// shared by every subscriber of the protocol and must not be modified.
type Encoder interface {
	Encode(m *wspush.Message) []byte
}

// Broker is the part of wspush.Broker the hub drives: it publishes, and it
// declares the channels this node has subscribers of.
type Broker interface {
	Publish(ctx context.Context, m *wspush.Message, opts wspush.PublishOptions) (wspush.StreamPosition, error)
	Subscribe(ctx context.Context, channel string) error
	Unsubscribe(ctx context.Context, channel string) error
}

// numShards spreads channels over this many locks so that deliveries to
// different channels rarely contend.
const numShards = 64

// Hub is the set of this node's subscriptions. It is safe for concurrent use.
//
// Lock order: a channel's interest lock (locks[i]) before its shard lock
// (shards[i].mu); a shard lock before a Subscriber's own locks (Send). The
// interest lock is held across the broker call that declares interest, so
// that the first Subscribe and the last Unsubscribe of a channel reach the
// broker in the order they happened.
type Hub struct {
	broker Broker
	direct int // the largest fan-out sent with SendNow: DirectFanout, or 0 for a SerialBroker
	seed   maphash.Seed
	locks  [numShards]sync.Mutex
	shards [numShards]shard
	all    [numShards]connShard

	channels      atomic.Int64
	subscriptions atomic.Int64
	connections   atomic.Int64
	published     atomic.Uint64
	delivered     atomic.Uint64
}

type shard struct {
	mu    sync.RWMutex
	rooms map[string]*room
}

// room is the local subscribers of one channel.
type room struct {
	subs  []Subscriber
	index map[Subscriber]int
}

type connShard struct {
	mu    sync.RWMutex
	conns map[Subscriber]struct{}
}

// New returns an empty Hub that publishes through broker and declares
// interest to it. The broker delivers to the hub's HandleMessage.
func New(broker Broker) *Hub {
	h := &Hub{broker: broker, direct: DirectFanout, seed: maphash.MakeSeed()}
	if sb, ok := broker.(SerialBroker); ok && sb.SerialDelivery() {
		h.direct = 0
	}
	for i := range h.shards {
		h.shards[i].rooms = map[string]*room{}
		h.all[i].conns = map[Subscriber]struct{}{}
	}
	return h
}

func (h *Hub) index(channel string) int {
	return int(maphash.String(h.seed, channel) % numShards)
}

// Connect adds s to the connections that broadcasts reach. Connecting
// twice is a no-op.
func (h *Hub) Connect(s Subscriber) {
	cs := &h.all[s.ID()%numShards]
	cs.mu.Lock()
	_, dup := cs.conns[s]
	cs.conns[s] = struct{}{}
	cs.mu.Unlock()
	if !dup {
		h.connections.Add(1)
	}
}

// Disconnect removes s from the connections that broadcasts reach. The
// caller unsubscribes s from its channels.
func (h *Hub) Disconnect(s Subscriber) {
	cs := &h.all[s.ID()%numShards]
	cs.mu.Lock()
	_, ok := cs.conns[s]
	delete(cs.conns, s)
	cs.mu.Unlock()
	if ok {
		h.connections.Add(-1)
	}
}

// Subscribe adds s to channel's subscribers. The first local subscriber of
// a channel makes the hub declare interest to the broker; if that fails,
// s is removed again and the error is returned. s is added before the
// broker is asked, so that no message the broker delivers once its
// subscription is live can miss s; as a result, s may be sent messages of
// channel while the call runs, even if it then fails (the native protocol
// holds them until the outcome, and drops them on failure). Subscribing
// twice is a no-op.
func (h *Hub) Subscribe(ctx context.Context, channel string, s Subscriber) error {
	i := h.index(channel)
	h.locks[i].Lock()
	defer h.locks[i].Unlock()
	sh := &h.shards[i]
	sh.mu.Lock()
	r := sh.rooms[channel]
	first := r == nil
	if first {
		r = &room{index: map[Subscriber]int{}}
		sh.rooms[channel] = r
		h.channels.Add(1)
	}
	if _, ok := r.index[s]; ok {
		sh.mu.Unlock()
		return nil
	}
	r.index[s] = len(r.subs)
	r.subs = append(r.subs, s)
	h.subscriptions.Add(1)
	sh.mu.Unlock()
	if !first {
		return nil
	}
	if err := h.broker.Subscribe(ctx, channel); err != nil {
		sh.mu.Lock()
		h.removeLocked(sh, channel, r, s)
		sh.mu.Unlock()
		return err
	}
	return nil
}

// Unsubscribe removes s from channel's subscribers. The last local
// subscriber's leaving withdraws the node's interest from the broker; the
// subscription is gone locally even if that call fails.
func (h *Hub) Unsubscribe(ctx context.Context, channel string, s Subscriber) error {
	i := h.index(channel)
	h.locks[i].Lock()
	defer h.locks[i].Unlock()
	sh := &h.shards[i]
	sh.mu.Lock()
	r := sh.rooms[channel]
	last := r != nil && h.removeLocked(sh, channel, r, s)
	sh.mu.Unlock()
	if last {
		return h.broker.Unsubscribe(ctx, channel)
	}
	return nil
}

// removeLocked removes s from r and reports whether r became empty (and
// was dropped). sh.mu is held.
func (h *Hub) removeLocked(sh *shard, channel string, r *room, s Subscriber) bool {
	i, ok := r.index[s]
	if !ok {
		return false
	}
	last := len(r.subs) - 1
	r.subs[i] = r.subs[last]
	r.index[r.subs[i]] = i
	r.subs[last] = nil
	r.subs = r.subs[:last]
	delete(r.index, s)
	h.subscriptions.Add(-1)
	if len(r.subs) > 0 {
		return false
	}
	delete(sh.rooms, channel)
	h.channels.Add(-1)
	return true
}

// Subscribers returns the number of local subscribers of channel.
func (h *Hub) Subscribers(channel string) int {
	sh := &h.shards[h.index(channel)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if r := sh.rooms[channel]; r != nil {
		return len(r.subs)
	}
	return 0
}

// HandleMessage delivers m to the local subscribers of its channel, or to
// every local connection for a broadcast. It is the hub's side of the
// Broker: it never blocks on a connection. A channel of up to DirectFanout
// subscribers is written to in the caller's goroutine (see NowSender),
// unless the broker is a SerialBroker; the frames of a larger one are
// queued for the writers.
func (h *Hub) HandleMessage(m *wspush.Message) {
	var frames frameCache
	n := 0
	if m.Broadcast {
		for i := range h.all {
			cs := &h.all[i]
			cs.mu.RLock()
			for s := range cs.conns {
				if s.Send(m, frames.get(s.Encoder(), m)) {
					n++
				}
			}
			cs.mu.RUnlock()
		}
	} else {
		sh := &h.shards[h.index(m.Channel)]
		sh.mu.RLock()
		if r := sh.rooms[m.Channel]; r != nil && len(r.subs) <= h.direct {
			for _, s := range r.subs {
				if sendNow(s, m, frames.get(s.Encoder(), m)) {
					n++
				}
			}
		} else if r != nil {
			for _, s := range r.subs {
				if s.Send(m, frames.get(s.Encoder(), m)) {
					n++
				}
			}
		}
		sh.mu.RUnlock()
	}
	if n > 0 {
		h.delivered.Add(uint64(n))
	}
}

// sendNow gives s its frame of m, written at once if s can.
func sendNow(s Subscriber, m *wspush.Message, frame []byte) bool {
	if ns, ok := s.(NowSender); ok {
		return ns.SendNow(m, frame)
	}
	return s.Send(m, frame)
}

// frameCache holds a message's frame per encoder: nearly always one.
type frameCache struct {
	n      int
	encs   [2]Encoder
	frames [2][]byte
	more   map[Encoder][]byte
}

func (c *frameCache) get(e Encoder, m *wspush.Message) []byte {
	for i := range c.n {
		if c.encs[i] == e {
			return c.frames[i]
		}
	}
	if f, ok := c.more[e]; ok {
		return f
	}
	f := e.Encode(m)
	if c.n < len(c.encs) {
		c.encs[c.n], c.frames[c.n] = e, f
		c.n++
		return f
	}
	if c.more == nil {
		c.more = map[Encoder][]byte{}
	}
	c.more[e] = f
	return f
}

// Publish publishes m through the broker, to the subscribers of every node,
// and returns its place in the channel's history when opts keep one.
func (h *Hub) Publish(ctx context.Context, m *wspush.Message, opts wspush.PublishOptions) (wspush.StreamPosition, error) {
	pos, err := h.broker.Publish(ctx, m, opts)
	if err != nil {
		return pos, err
	}
	h.published.Add(1)
	return pos, nil
}

// ChannelInfo is a channel with local subscribers.
type ChannelInfo struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
}

// Channels returns the channels with local subscribers whose names start
// with prefix, sorted by name.
func (h *Hub) Channels(prefix string) []ChannelInfo {
	var out []ChannelInfo
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for name, r := range sh.rooms {
			if strings.HasPrefix(name, prefix) {
				out = append(out, ChannelInfo{name, len(r.subs)})
			}
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b ChannelInfo) int { return strings.Compare(a.Channel, b.Channel) })
	return out
}

// Stats is a snapshot of the hub's counters.
type Stats struct {
	Channels      int64  // channels with local subscribers
	Subscriptions int64  // (connection, channel) pairs
	Connections   int64  // connections that broadcasts reach
	Published     uint64 // messages published from this node
	Delivered     uint64 // frames queued for local subscribers
}

// Stats returns the current counters.
func (h *Hub) Stats() Stats {
	return Stats{
		Channels:      h.channels.Load(),
		Subscriptions: h.subscriptions.Load(),
		Connections:   h.connections.Load(),
		Published:     h.published.Load(),
		Delivered:     h.delivered.Load(),
	}
}
