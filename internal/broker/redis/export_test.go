package redis

import "context"

// RefreshPresenceNow runs one presence refresh, as the refresher does
// every third of the TTL.
func (b *Broker) RefreshPresenceNow(ctx context.Context) { b.refreshPresenceOnce(ctx) }
