package redis

import (
	"context"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/envelope"
)

// Subscribe subscribes this node to channel's Redis channel and returns
// once Redis confirms it.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	key := b.pubsubChannel(channel)
	b.mu.Lock()
	ps := b.ps
	if ps == nil {
		b.mu.Unlock()
		return wspush.Errorf(wspush.ErrUnavailable, "redis broker not running")
	}
	w := make(chan struct{})
	b.waiters[key] = append(b.waiters[key], w)
	b.subs[key] = true
	b.mu.Unlock()
	err := ps.Subscribe(ctx, key)
	if err == nil {
		select {
		case <-w:
			if b.Ready() != nil {
				err = wspush.Errorf(wspush.ErrUnavailable, "redis unavailable")
			}
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		b.dropWaiter(key, w)
		b.mu.Lock()
		delete(b.subs, key)
		if b.ps != nil {
			ps = b.ps // the current one: the connection may have been replaced meanwhile
		}
		b.mu.Unlock()
		_ = ps.Unsubscribe(context.WithoutCancel(ctx), key) // not resubscribed on reconnect
		return unavailable("subscribe", err)
	}
	b.markFloor(ctx, channel)
	return nil
}

// markFloor records where channel's history stood once the node's
// subscription was in place, unless a message came first. Everything
// published after that point reaches the node by PUB/SUB or, after a lost
// connection, from the history; without it, a node that lost the
// connection before the channel's first message had no position to read
// from, and lost what was published meanwhile. For a channel without
// history the floor is the empty position, and reading from it finds
// nothing.
func (b *Broker) markFloor(ctx context.Context, channel string) {
	meta, err := b.client.HMGet(ctx, b.metaKey(channel), "e", "s").Result()
	if err != nil {
		// The subscription stands; only the gap the floor closes remains.
		b.logger.Debug("no history position at subscribe", "channel", channel, "err", err)
		return
	}
	epoch, _ := meta[0].(string)
	top, _ := strconv.ParseUint(str(meta[1]), 10, 64)
	b.mu.Lock()
	if _, tracked := b.streams[channel]; !tracked {
		b.streams[channel] = &position{offset: top, epoch: epoch, floor: true}
	}
	b.mu.Unlock()
}

// Unsubscribe unsubscribes this node from channel's Redis channel.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	b.mu.Lock()
	ps := b.ps
	delete(b.streams, channel)
	delete(b.subs, b.pubsubChannel(channel))
	b.mu.Unlock()
	if ps == nil {
		return nil
	}
	if err := ps.Unsubscribe(ctx, b.pubsubChannel(channel)); err != nil {
		return unavailable("unsubscribe", err)
	}
	return nil
}

// confirm wakes the Subscribe calls waiting for key. A subscription that
// a Subscribe call made (not one the client renewed after a reconnect)
// starts the channel's positions afresh: messages of an earlier
// subscription, still in flight when it ended, may have recorded one, and
// the first message would then look like a gap, to be filled with what
// was published while this node was not subscribed. Redis sends the
// confirmation after those messages, on the same connection.
func (b *Broker) confirm(key string) {
	b.mu.Lock()
	ws := b.waiters[key]
	delete(b.waiters, key)
	if len(ws) > 0 {
		if ch := b.channelOf(key); ch != "" {
			delete(b.streams, ch)
		}
	}
	b.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

func (b *Broker) dropWaiter(key string, w chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.waiters[key]
	for i, x := range ws {
		if x == w {
			b.waiters[key] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(b.waiters[key]) == 0 {
		delete(b.waiters, key)
	}
}

// SerialDelivery reports that the broker delivers every message from one
// goroutine (Run's, reading the one subscriber connection), so that the
// hub queues even small fan-outs for its writers (hub.SerialBroker)
// instead of writing them on that goroutine.
func (b *Broker) SerialDelivery() bool { return true }

// deliver hands a PUB/SUB message to the handler. For a channel with
// history it first reads from the history any message this node missed (a
// gap in the offsets), and drops what it delivered already. It runs on
// Run's goroutine only.
func (b *Broker) deliver(ctx context.Context, msg *goredis.Message) {
	channel := ""
	if msg.Channel != b.broadcastChannel() {
		if channel = b.channelOf(msg.Channel); channel == "" {
			return
		}
	}
	m, err := envelope.Decode(channel, msg.Payload)
	if err != nil {
		b.logger.Warn("dropping a malformed redis message", "channel", msg.Channel, "err", err)
		return
	}
	if m.Offset > 0 && !b.catchUp(ctx, channel, m.Position()) {
		return // delivered already
	}
	b.handler.HandleMessage(m)
}

// catchUp delivers the messages of channel between the last one this node
// delivered (or its floor, where the subscription began) and next, read
// from the history, and records next as delivered. It reports false when
// next was delivered already.
func (b *Broker) catchUp(ctx context.Context, channel string, next wspush.StreamPosition) bool {
	b.mu.Lock()
	last, tracked := b.streams[channel]
	if !tracked {
		last = &position{}
		b.streams[channel] = last
	}
	prev := *last
	b.mu.Unlock()
	switch {
	case !tracked:
	case prev.epoch == next.Epoch && !prev.floor:
		if next.Offset <= prev.offset {
			return false
		}
		if next.Offset > prev.offset+1 {
			b.fill(ctx, channel, last, next.Offset-1)
		}
	case prev.epoch == next.Epoch:
		// A message at or below the floor was published as the
		// subscription began: new here, delivered. One beyond the next
		// offset means some were lost on the way.
		if next.Offset > prev.offset+1 {
			b.fill(ctx, channel, last, next.Offset-1)
		}
	default:
		// Another epoch than the one last seen (or an empty floor): the
		// history started over after it, and all of this epoch came
		// later. What came before next is read from its start.
		if next.Offset > 1 {
			b.fill(ctx, channel, last, next.Offset-1)
		}
	}
	b.mu.Lock()
	last.offset, last.epoch, last.floor = next.Offset, next.Epoch, false
	b.mu.Unlock()
	return true
}

// fill delivers channel's messages after last, up to offset upTo (all
// kept, when upTo is 0), from the history. When the channel's epoch is no
// longer last's (its history expired while it was quiet, and started over),
// all of the new epoch came after last: it is read from its start.
func (b *Broker) fill(ctx context.Context, channel string, last *position, upTo uint64) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	b.mu.Lock()
	since := wspush.StreamPosition{Offset: last.offset, Epoch: last.epoch}
	b.mu.Unlock()
	res, err := b.History(ctx, channel, wspush.HistoryQuery{Since: &since})
	if err == nil && !res.Complete && res.Position.Epoch != "" && res.Position.Epoch != since.Epoch {
		since = wspush.StreamPosition{}
		res, err = b.History(ctx, channel, wspush.HistoryQuery{Since: &since})
	}
	if err != nil || !res.Complete {
		b.logger.Warn("messages lost for this node: the history does not cover the gap", "channel", channel, "after", since.Offset, "err", err)
	}
	for _, m := range res.Messages {
		if upTo > 0 && m.Offset > upTo {
			break
		}
		b.handler.HandleMessage(m)
		b.mu.Lock()
		last.offset, last.epoch, last.floor = m.Offset, m.Epoch, false
		b.mu.Unlock()
	}
}

// resyncAll reads, for every channel with history this node delivers, what
// was published while the connection was down.
func (b *Broker) resyncAll(ctx context.Context) {
	var read, empty []string // channels with a position; with an empty floor
	b.mu.Lock()
	for ch, last := range b.streams {
		switch {
		case last.epoch != "":
			read = append(read, ch)
		case last.floor:
			empty = append(empty, ch)
		}
	}
	b.mu.Unlock()
	read = append(read, b.withHistory(ctx, empty)...)
	for _, ch := range read {
		b.mu.Lock()
		last := b.streams[ch]
		b.mu.Unlock()
		if last != nil {
			b.fill(ctx, ch, last, 0)
		}
	}
}

// withHistory returns those of chans that have a history now. A channel
// with an empty floor had none when subscribed, most often because it
// keeps none: one pipelined look at all of them spares a history read for
// each. When the look fails, all are returned: they are read.
func (b *Broker) withHistory(ctx context.Context, chans []string) []string {
	if len(chans) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	exists := make([]*goredis.IntCmd, len(chans))
	if _, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, ch := range chans {
			exists[i] = p.Exists(ctx, b.metaKey(ch))
		}
		return nil
	}); err != nil {
		return chans
	}
	var out []string
	for i, ch := range chans {
		if exists[i].Val() > 0 {
			out = append(out, ch)
		}
	}
	return out
}
