package redis

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wspush/wspush"
)

// AddPresence records c in channel's presence. With ttl 0 the entry lives
// for the broker's presence TTL and this node refreshes it until
// RemovePresence (or until the node dies); with ttl > 0 it lives for ttl
// unless the caller adds it again.
func (b *Broker) AddPresence(ctx context.Context, channel string, c wspush.ClientInfo, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = b.cfg.PresenceTTL
		b.mu.Lock()
		b.local[presenceKey{channel, c.ClientID}] = c
		b.mu.Unlock()
	}
	return b.writePresence(ctx, channel, []wspush.ClientInfo{c}, ttl)
}

// extendScript sets the expiry of each key to ARGV[1] ms unless it has a
// later one: the keys of a channel's presence live as long as its
// longest-lived entry, whatever presence_ttl each node has.
var extendScript = goredis.NewScript(`
for i = 1, #KEYS do
  if redis.call("pttl", KEYS[i]) < tonumber(ARGV[1]) then
    redis.call("pexpire", KEYS[i], ARGV[1])
  end
end
return 0
`)

// writePresence adds or refreshes entries of channel for ttl.
func (b *Broker) writePresence(ctx context.Context, channel string, clients []wspush.ClientInfo, ttl time.Duration) error {
	expires := float64(time.Now().Add(ttl).UnixMilli())
	keys := []string{b.presenceZ(channel), b.presenceH(channel)}
	_, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, c := range clients {
			info, _ := json.Marshal(c)
			p.ZAdd(ctx, keys[0], goredis.Z{Score: expires, Member: c.ClientID})
			p.HSet(ctx, keys[1], c.ClientID, info)
		}
		// EVAL, not EVALSHA: in a pipeline nothing would resend the script
		// after a NOSCRIPT. Redis compiles it once and keeps it.
		extendScript.Eval(ctx, p, keys, ttl.Milliseconds())
		return nil
	})
	if err != nil {
		return unavailable("presence", err)
	}
	return nil
}

// RemovePresence removes the client from channel's presence.
func (b *Broker) RemovePresence(ctx context.Context, channel, clientID string) error {
	b.mu.Lock()
	delete(b.local, presenceKey{channel, clientID})
	b.mu.Unlock()
	_, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZRem(ctx, b.presenceZ(channel), clientID)
		p.HDel(ctx, b.presenceH(channel), clientID)
		return nil
	})
	if err != nil {
		return unavailable("presence", err)
	}
	return nil
}

// presenceScript drops the expired entries of a channel and returns the
// rest.  KEYS: sorted set, hash.  ARGV: now (ms).
var presenceScript = goredis.NewScript(`
local expired = redis.call("zrangebyscore", KEYS[1], "-inf", ARGV[1])
for i = 1, #expired, 500 do
  redis.call("hdel", KEYS[2], unpack(expired, i, math.min(i + 499, #expired)))
end
redis.call("zremrangebyscore", KEYS[1], "-inf", ARGV[1])
return redis.call("hgetall", KEYS[2])
`)

// Presence returns channel's clients by client id.
func (b *Broker) Presence(ctx context.Context, channel string) (map[string]wspush.ClientInfo, error) {
	res, err := presenceScript.Run(ctx, b.client, []string{b.presenceZ(channel), b.presenceH(channel)}, strconv.FormatInt(time.Now().UnixMilli(), 10)).StringSlice()
	if err != nil {
		return nil, unavailable("presence", err)
	}
	out := make(map[string]wspush.ClientInfo, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		var c wspush.ClientInfo
		if json.Unmarshal([]byte(res[i+1]), &c) == nil {
			out[res[i]] = c
		}
	}
	return out, nil
}

// PresenceStats counts channel's clients and distinct users.
func (b *Broker) PresenceStats(ctx context.Context, channel string) (wspush.PresenceStats, error) {
	clients, err := b.Presence(ctx, channel)
	if err != nil {
		return wspush.PresenceStats{}, err
	}
	return wspush.CountPresence(clients), nil
}

// refreshPresence re-adds this node's presence entries every third of the
// TTL, until ctx is done. It is Run's.
func (b *Broker) refreshPresence(ctx context.Context) {
	t := time.NewTicker(b.cfg.PresenceTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.refreshPresenceOnce(ctx)
	}
}

// refreshPresenceOnce re-adds this node's presence entries. An entry
// removed while its refresh was on the way may have been written back
// after the removal reached Redis, a ghost that would stay for a TTL: it
// is removed again once the write is done.
func (b *Broker) refreshPresenceOnce(ctx context.Context) {
	byChannel := map[string][]wspush.ClientInfo{}
	b.mu.Lock()
	for k, c := range b.local {
		byChannel[k.channel] = append(byChannel[k.channel], c)
	}
	b.mu.Unlock()
	for ch, clients := range byChannel {
		wctx, cancel := context.WithTimeout(ctx, opTimeout)
		if err := b.writePresence(wctx, ch, clients, b.cfg.PresenceTTL); err != nil {
			b.logger.Debug("presence refresh failed", "channel", ch, "err", err)
		}
		var gone []any
		b.mu.Lock()
		for _, c := range clients {
			if _, ok := b.local[presenceKey{ch, c.ClientID}]; !ok {
				gone = append(gone, c.ClientID)
			}
		}
		b.mu.Unlock()
		if len(gone) > 0 {
			if _, err := b.client.Pipelined(wctx, func(p goredis.Pipeliner) error {
				p.ZRem(wctx, b.presenceZ(ch), gone...)
				p.HDel(wctx, b.presenceH(ch), anyStrings(gone)...)
				return nil
			}); err != nil {
				b.logger.Debug("presence refresh: removing entries left meanwhile failed", "channel", ch, "err", err)
			}
		}
		cancel()
	}
}

func anyStrings(v []any) []string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = x.(string)
	}
	return out
}
