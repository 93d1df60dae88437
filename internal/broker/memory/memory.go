// Package memory is the single-node broker: Publish hands a message
// straight to this node's hub. It needs no setup and is the default. It also
// keeps channel history and presence, in this process's memory.
//
// Guarantees: single node only; a message published while Run runs is
// delivered exactly once, synchronously, before Publish returns; messages
// published one after another are delivered in that order, and the
// messages of a channel with history in offset order. History and presence
// are lost when the process stops: the next process gives every channel a
// new epoch, which tells reconnecting clients that their offsets are void.
package memory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"hash/maphash"
	"sync"
	"time"

	"github.com/wspush/wspush"
)

// Broker is the in-process broker.
//
// Lock order: a channel's stream lock before mu.
type Broker struct {
	mu       sync.RWMutex
	handler  wspush.Handler // set while Run runs
	interest map[string]int // channels with local subscribers

	seed     maphash.Seed
	streams  [numShards]streamShard
	presence [numShards]presenceShard
	epochs   epochSource
}

var (
	_ wspush.Broker   = (*Broker)(nil)
	_ wspush.History  = (*Broker)(nil)
	_ wspush.Presence = (*Broker)(nil)
)

// numShards spreads channels over this many locks.
const numShards = 64

// sweepInterval is how often Run drops expired histories and presence.
const sweepInterval = 10 * time.Second

// New returns a Broker; it delivers nothing until Run starts.
func New() *Broker {
	b := &Broker{interest: map[string]int{}, seed: maphash.MakeSeed()}
	for i := range b.streams {
		b.streams[i].m = map[string]*stream{}
		b.presence[i].m = map[string]map[string]presenceEntry{}
	}
	b.epochs.prefix = randomString(6)
	return b
}

func (b *Broker) shard(channel string) int {
	return int(maphash.String(b.seed, channel) % numShards)
}

// Publish delivers m to this node's handler, if the node subscribes to its
// channel (or m is a broadcast). With history, it first appends m to the
// channel's history and gives it the next offset.
func (b *Broker) Publish(_ context.Context, m *wspush.Message, opts wspush.PublishOptions) (wspush.StreamPosition, error) {
	b.mu.RLock()
	h, interested := b.handler, m.Broadcast || b.interest[m.Channel] > 0
	b.mu.RUnlock()
	if h == nil {
		return wspush.StreamPosition{}, wspush.Errorf(wspush.ErrUnavailable, "broker not running")
	}
	if opts.HistorySize <= 0 || m.Broadcast || m.Kind != wspush.KindPublication {
		if interested {
			h.HandleMessage(m)
		}
		return wspush.StreamPosition{}, nil
	}
	st := b.lockStream(m.Channel, true)
	defer st.mu.Unlock()
	now := time.Now()
	if st.expired(now) {
		// Dropped, as far as readers know (History reports no position),
		// though not swept yet: start over in a new epoch, as a swept
		// channel would.
		st.reset(b.epochs.next())
	}
	st.append(m, opts, now)
	// Delivered under the stream's lock: a channel's messages reach the
	// hub in offset order, and a history read sees a message either in the
	// history or, after it, live. Interest is read under it too: a node
	// that subscribed, then read the history, gets every later offset.
	b.mu.RLock()
	interested = b.interest[m.Channel] > 0
	b.mu.RUnlock()
	if interested {
		h.HandleMessage(m)
	}
	return m.Position(), nil
}

// Subscribe declares interest in channel.
func (b *Broker) Subscribe(_ context.Context, channel string) error {
	b.mu.Lock()
	b.interest[channel]++
	b.mu.Unlock()
	return nil
}

// Unsubscribe withdraws interest in channel.
func (b *Broker) Unsubscribe(_ context.Context, channel string) error {
	b.mu.Lock()
	if b.interest[channel] <= 1 {
		delete(b.interest, channel)
	} else {
		b.interest[channel]--
	}
	b.mu.Unlock()
	return nil
}

// Run delivers published messages to h until ctx is done, and drops
// expired histories and presence entries meanwhile.
func (b *Broker) Run(ctx context.Context, h wspush.Handler) error {
	b.mu.Lock()
	b.handler = h
	b.mu.Unlock()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.mu.Lock()
			b.handler = nil
			b.mu.Unlock()
			return nil
		case now := <-t.C:
			b.sweep(now)
		}
	}
}

// Ready reports whether Run is running.
func (b *Broker) Ready() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.handler == nil {
		return wspush.Errorf(wspush.ErrUnavailable, "broker not running")
	}
	return nil
}

// sweep drops what expired.
func (b *Broker) sweep(now time.Time) {
	for i := range b.streams {
		b.streams[i].sweep(now)
		b.presence[i].sweep(now)
	}
}

// epochSource names epochs: this process's random prefix and a counter, so
// that a channel whose history was dropped never gets its old epoch back.
type epochSource struct {
	mu     sync.Mutex
	prefix string
	n      uint64
}

func (e *epochSource) next() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	return e.prefix + base36(e.n)
}

func base36(n uint64) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [13]byte
	i := len(b)
	for {
		i--
		b[i] = digits[n%36]
		n /= 36
		if n == 0 {
			return string(b[i:])
		}
	}
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}
