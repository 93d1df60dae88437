package redis

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wspush/wspush"
)

// publishScript appends a message to a channel's history, numbers it and
// publishes it, atomically: offsets and PUB/SUB order agree on every node.
//
//	KEYS: stream, meta, pubsub channel
//	ARGV: data, history size, history TTL (ms), epoch if new, now (ms)
//
// The meta hash holds the epoch (e), the top offset (s) and the TTL (t).
// A channel whose keys expired starts a new epoch, from offset 1.
var publishScript = goredis.NewScript(`
local epoch = redis.call("hget", KEYS[2], "e")
if not epoch then
  epoch = ARGV[4]
  redis.call("del", KEYS[1])
  redis.call("hset", KEYS[2], "e", epoch)
end
local offset = redis.call("hincrby", KEYS[2], "s", 1)
redis.call("hset", KEYS[2], "t", ARGV[3])
redis.call("xadd", KEYS[1], "MAXLEN", ARGV[2], offset .. "-1", "d", ARGV[1], "t", ARGV[5])
redis.call("pexpire", KEYS[1], ARGV[3])
redis.call("pexpire", KEYS[2], ARGV[3])
redis.call("publish", KEYS[3], "v1\np\n" .. offset .. "\n" .. epoch .. "\n\n" .. ARGV[1])
return {offset, epoch}
`)

// newEpoch returns a random epoch name.
func newEpoch() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// History reads channel's history from Redis. The meta hash and the
// stream are read in one MULTI/EXEC: between two separate reads the
// history could expire and a publish start a new epoch, whose entries
// (offsets from 1 again) would then be returned under the old epoch.
func (b *Broker) History(ctx context.Context, channel string, q wspush.HistoryQuery) (wspush.HistoryResult, error) {
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = 1 << 30
	}
	var meta *goredis.SliceCmd
	var entriesCmd *goredis.XMessageSliceCmd
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		meta = p.HMGet(ctx, b.metaKey(channel), "e", "s", "t")
		if q.Since == nil {
			entriesCmd = p.XRevRangeN(ctx, b.streamKey(channel), "+", "-", limit)
		} else {
			entriesCmd = p.XRangeN(ctx, b.streamKey(channel), "("+strconv.FormatUint(q.Since.Offset, 10)+"-1", "+", limit)
		}
		return nil
	})
	if err != nil {
		return wspush.HistoryResult{}, unavailable("history", err)
	}
	var res wspush.HistoryResult
	epoch, _ := meta.Val()[0].(string)
	top, _ := strconv.ParseUint(str(meta.Val()[1]), 10, 64)
	ttl, _ := strconv.ParseInt(str(meta.Val()[2]), 10, 64)
	res.Position = wspush.StreamPosition{Offset: top, Epoch: epoch}
	fresh := q.Since != nil && *q.Since == (wspush.StreamPosition{})
	if epoch == "" {
		res.Complete = fresh
		return res, nil
	}
	oldest := time.Now().UnixMilli() - ttl // entries before it expired
	entries := entriesCmd.Val()
	if q.Since == nil {
		for i, j := 0, len(entries)-1; i < j; i, j = i+1, j-1 {
			entries[i], entries[j] = entries[j], entries[i]
		}
	} else {
		since := *q.Since
		if !fresh && (since.Epoch != epoch || since.Offset > top) {
			return res, nil // another epoch, or an offset never given
		}
		res.Complete = since.Offset == top ||
			len(entries) > 0 && entryOffset(entries[0]) == since.Offset+1 && entryTime(entries[0]) > oldest
	}
	for _, e := range entries {
		if entryTime(e) <= oldest {
			continue // expired but not trimmed yet
		}
		d, _ := e.Values["d"].(string)
		res.Messages = append(res.Messages, &wspush.Message{Channel: channel, Data: []byte(d), Offset: entryOffset(e), Epoch: epoch})
	}
	return res, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// entryOffset is the offset of a stream entry, whose ID is "<offset>-1".
func entryOffset(e goredis.XMessage) uint64 {
	id := e.ID
	for i := range len(id) {
		if id[i] == '-' {
			id = id[:i]
			break
		}
	}
	off, _ := strconv.ParseUint(id, 10, 64)
	return off
}

// entryTime is when a stream entry was added, in Unix milliseconds.
func entryTime(e goredis.XMessage) int64 {
	t, _ := strconv.ParseInt(str(e.Values["t"]), 10, 64)
	return t
}
