package memory

import (
	"context"
	"sync"
	"time"

	"github.com/wspush/wspush"
)

// stream is one channel's history.
type stream struct {
	mu      sync.Mutex
	dead    bool // dropped from its shard: look it up again
	epoch   string
	top     uint64  // the last offset given
	entries []entry // oldest first; at most the history size
	ttl     time.Duration
	expires time.Time // the last publication plus ttl
}

type entry struct {
	m  *wspush.Message
	at time.Time
}

type streamShard struct {
	mu sync.Mutex
	m  map[string]*stream
}

// lockStream returns channel's stream, locked; with create, it makes one
// (with a new epoch) if there is none. It returns nil when there is none
// and create is false.
func (b *Broker) lockStream(channel string, create bool) *stream {
	sh := &b.streams[b.shard(channel)]
	for {
		sh.mu.Lock()
		st := sh.m[channel]
		if st == nil {
			if !create {
				sh.mu.Unlock()
				return nil
			}
			st = &stream{epoch: b.epochs.next()}
			sh.m[channel] = st
		}
		sh.mu.Unlock()
		st.mu.Lock()
		if !st.dead {
			return st
		}
		st.mu.Unlock() // swept meanwhile: a new one replaces it
	}
}

// expired reports whether the stream went without a publication for its
// TTL: its history is lost. st.mu is held.
func (st *stream) expired(now time.Time) bool {
	return !st.expires.IsZero() && !now.Before(st.expires)
}

// reset empties the stream and starts it over in epoch. st.mu is held.
func (st *stream) reset(epoch string) {
	clear(st.entries)
	st.entries = st.entries[:0]
	st.epoch, st.top, st.expires = epoch, 0, time.Time{}
}

// append adds a copy of m, setting m's offset and epoch. st.mu is held.
func (st *stream) append(m *wspush.Message, opts wspush.PublishOptions, now time.Time) {
	st.top++
	m.Offset, m.Epoch = st.top, st.epoch
	kept := *m
	st.entries = append(st.entries, entry{&kept, now})
	if over := len(st.entries) - opts.HistorySize; over > 0 {
		clear(st.entries[:over])
		st.entries = st.entries[over:]
	}
	st.ttl = opts.HistoryTTL
	st.trim(now)
	if st.ttl > 0 {
		st.expires = now.Add(st.ttl)
	}
}

// trim drops the entries older than the TTL. st.mu is held.
func (st *stream) trim(now time.Time) {
	if st.ttl <= 0 {
		return
	}
	old := 0
	for old < len(st.entries) && now.Sub(st.entries[old].at) >= st.ttl {
		old++
	}
	if old > 0 {
		clear(st.entries[:old])
		st.entries = st.entries[old:]
	}
}

// sweep drops the streams without a publication for their TTL.
func (sh *streamShard) sweep(now time.Time) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for ch, st := range sh.m {
		st.mu.Lock()
		if st.expired(now) {
			st.dead = true
			delete(sh.m, ch)
		}
		st.mu.Unlock()
	}
}

// History reads channel's history. A channel without one has position
// {0, ""}. A Since of {0, ""} means "from the beginning, whatever the
// epoch": it is complete when nothing was dropped from the history yet.
func (b *Broker) History(_ context.Context, channel string, q wspush.HistoryQuery) (wspush.HistoryResult, error) {
	st := b.lockStream(channel, false)
	if st == nil {
		var res wspush.HistoryResult
		res.Complete = q.Since != nil && *q.Since == (wspush.StreamPosition{})
		return res, nil
	}
	defer st.mu.Unlock()
	now := time.Now()
	if st.expired(now) {
		return wspush.HistoryResult{Complete: q.Since != nil && *q.Since == (wspush.StreamPosition{})}, nil
	}
	st.trim(now) // entries older than the TTL linger until touched
	entries := st.entries
	res := wspush.HistoryResult{Position: wspush.StreamPosition{Offset: st.top, Epoch: st.epoch}}
	var from int // index of the first entry to return
	if q.Since != nil {
		since := *q.Since
		oldest := st.top + 1 - uint64(len(entries)) // offset of entries[0]
		fresh := since == wspush.StreamPosition{}
		switch {
		case !fresh && since.Epoch != st.epoch, since.Offset > st.top:
			return res, nil // another epoch, or an offset never given: not complete
		case since.Offset+1 < oldest:
			from = 0 // some were dropped: what is kept, not complete
		default:
			res.Complete = true
			from = int(since.Offset + 1 - oldest)
		}
		entries = entries[from:]
		if q.Limit > 0 && len(entries) > q.Limit {
			entries = entries[:q.Limit]
		}
	} else if q.Limit > 0 && len(entries) > q.Limit {
		entries = entries[len(entries)-q.Limit:]
	}
	res.Messages = make([]*wspush.Message, len(entries))
	for i, e := range entries {
		res.Messages[i] = e.m
	}
	return res, nil
}
