// Package memory is the single-node broker: Publish hands a message
// straight to this node's hub. It needs no setup and is the default.
//
// Guarantees: single node only; a message published while Run runs is
// delivered exactly once, synchronously, before Publish returns; messages
// published one after another are delivered in that order.
package memory

import (
	"context"
	"sync"

	"github.com/wspush/wspush"
)

// Broker is the in-process broker.
type Broker struct {
	mu       sync.RWMutex
	handler  wspush.Handler // set while Run runs
	interest map[string]int // channels with local subscribers
}

var _ wspush.Broker = (*Broker)(nil)

// New returns a Broker; it delivers nothing until Run starts.
func New() *Broker {
	return &Broker{interest: map[string]int{}}
}

// Publish delivers m to this node's handler, if the node subscribes to its
// channel (or m is a broadcast).
func (b *Broker) Publish(_ context.Context, m *wspush.Message) error {
	b.mu.RLock()
	h, interested := b.handler, m.Broadcast || b.interest[m.Channel] > 0
	b.mu.RUnlock()
	if h == nil {
		return wspush.Errorf(wspush.ErrUnavailable, "broker not running")
	}
	if interested {
		h.HandleMessage(m)
	}
	return nil
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

// Run delivers published messages to h until ctx is done.
func (b *Broker) Run(ctx context.Context, h wspush.Handler) error {
	b.mu.Lock()
	b.handler = h
	b.mu.Unlock()
	<-ctx.Done()
	b.mu.Lock()
	b.handler = nil
	b.mu.Unlock()
	return nil
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
