package redis

import "context"

// RefreshPresenceNow runs one presence refresh, as the refresher does
// every third of the TTL.
func (b *Broker) RefreshPresenceNow(ctx context.Context) { b.refreshPresenceOnce(ctx) }

// Waiting reports whether a Subscribe of channel waits for its
// confirmation: it has taken the PubSub it subscribes with.
func (b *Broker) Waiting(channel string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiters[b.pubsubChannel(channel)]) > 0
}

// Subscribed reports whether channel is in the node's channel set.
func (b *Broker) Subscribed(channel string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subs[b.pubsubChannel(channel)]
}
