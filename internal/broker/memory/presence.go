package memory

import (
	"context"
	"sync"
	"time"

	"github.com/wspush/wspush"
)

type presenceEntry struct {
	info    wspush.ClientInfo
	expires time.Time // zero: until removed
}

type presenceShard struct {
	mu sync.Mutex
	m  map[string]map[string]presenceEntry // channel -> client id -> entry
}

// AddPresence records c in channel's presence, for ttl (0: until removed).
func (b *Broker) AddPresence(_ context.Context, channel string, c wspush.ClientInfo, ttl time.Duration) error {
	sh := &b.presence[b.shard(channel)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	clients := sh.m[channel]
	if clients == nil {
		clients = map[string]presenceEntry{}
		sh.m[channel] = clients
	}
	e := presenceEntry{info: c}
	if ttl > 0 {
		e.expires = time.Now().Add(ttl)
	}
	clients[c.ClientID] = e
	return nil
}

// RemovePresence removes the client from channel's presence.
func (b *Broker) RemovePresence(_ context.Context, channel, clientID string) error {
	sh := &b.presence[b.shard(channel)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if clients := sh.m[channel]; clients != nil {
		delete(clients, clientID)
		if len(clients) == 0 {
			delete(sh.m, channel)
		}
	}
	return nil
}

// Presence returns channel's clients by client id.
func (b *Broker) Presence(_ context.Context, channel string) (map[string]wspush.ClientInfo, error) {
	sh := &b.presence[b.shard(channel)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := time.Now()
	out := map[string]wspush.ClientInfo{}
	for id, e := range sh.m[channel] {
		if e.expires.IsZero() || now.Before(e.expires) {
			out[id] = e.info
		}
	}
	return out, nil
}

// PresenceStats counts channel's clients and distinct users.
func (b *Broker) PresenceStats(ctx context.Context, channel string) (wspush.PresenceStats, error) {
	clients, _ := b.Presence(ctx, channel)
	return wspush.CountPresence(clients), nil
}

// sweep drops expired entries.
func (sh *presenceShard) sweep(now time.Time) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for ch, clients := range sh.m {
		for id, e := range clients {
			if !e.expires.IsZero() && !now.Before(e.expires) {
				delete(clients, id)
			}
		}
		if len(clients) == 0 {
			delete(sh.m, ch)
		}
	}
}
