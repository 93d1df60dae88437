package native

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/ws"
)

// session is one connection speaking the native protocol. The ws transport
// calls HandleMessage and Closed serially; the hub calls Send concurrently.
type session struct {
	proto *Protocol
	conn  *ws.Conn
	info  wspush.ClientInfo

	// Touched only from HandleMessage, Open and Closed (serial).
	channels map[string]struct{}
	tokens   float64 // rate limiter bucket
	refill   time.Time
	strikes  int // malformed frames in a row

	// Pushes of channels whose subscription is being set up are held here
	// and released after the subscribe reply (and recovered messages).
	// After the release, a channel with history keeps a floor, the reply's
	// position, until a push past it comes: a push at or below it that
	// comes late (a node's PUB/SUB can lag behind the history it read, or
	// a publisher's fan-out behind its append) was in the history already.
	heldMu sync.Mutex
	held   map[string][]heldPush
	floors []channelFloor // few: the channels subscribed last, until their next push
	nwatch atomic.Int32   // len(held) + len(floors), read without the lock on every push
}

// channelFloor is the position a channel's subscription began at.
type channelFloor struct {
	channel string
	pos     wspush.StreamPosition
}

// heldPush is a push waiting for its channel's subscription to be set up.
type heldPush struct {
	m     *wspush.Message
	frame []byte
}

var _ hub.NowSender = (*session)(nil)

// ID implements hub.Subscriber.
func (s *session) ID() uint64 { return s.conn.ID() }

// Encoder implements hub.Subscriber.
func (s *session) Encoder() hub.Encoder { return s.proto.enc }

// Send implements hub.Subscriber.
func (s *session) Send(m *wspush.Message, frame []byte) bool {
	return s.send(m, frame, false)
}

// SendNow implements hub.NowSender.
func (s *session) SendNow(m *wspush.Message, frame []byte) bool {
	return s.send(m, frame, true)
}

// send queues frame, or holds it while m's channel is being subscribed
// with a position; with now, it writes it at once if it can (ws.SendNow).
func (s *session) send(m *wspush.Message, frame []byte, now bool) bool {
	if s.nwatch.Load() > 0 && !m.Broadcast {
		s.heldMu.Lock()
		if held, ok := s.held[m.Channel]; ok {
			if len(held) >= maxHeld {
				s.heldMu.Unlock()
				s.conn.Close(ws.CloseSlowConsumer, "slow consumer: too many messages during subscribe")
				return false
			}
			s.held[m.Channel] = append(held, heldPush{m, frame})
			s.heldMu.Unlock()
			return true
		}
		if m.Offset > 0 {
			for i, f := range s.floors {
				if f.channel != m.Channel {
					continue
				}
				if f.pos.Epoch == m.Epoch && m.Offset <= f.pos.Offset {
					s.heldMu.Unlock()
					return true // the client has it: replayed, or before the reply's position
				}
				s.removeFloorLocked(i) // past it: the pushes that follow are too
				break
			}
		}
		s.heldMu.Unlock()
	}
	if now {
		return s.conn.SendNow(frame)
	}
	return s.conn.Send(frame)
}

// hold starts holding the pushes of ch.
func (s *session) hold(ch string) {
	s.heldMu.Lock()
	if s.held == nil {
		s.held = map[string][]heldPush{}
	}
	if _, ok := s.held[ch]; !ok {
		s.held[ch] = nil
		s.nwatch.Add(1)
	}
	s.heldMu.Unlock()
}

// release sends the held pushes of ch after the given frames, skipping
// publications at or before the position at in its epoch (the client has
// them already), and lets the next ones through directly; for a channel with
// history, those at or before at still are dropped, until one past it
// comes. Holding the lock meanwhile keeps concurrent pushes behind the
// released ones.
func (s *session) release(ch string, at wspush.StreamPosition, frames ...[]byte) {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	for _, f := range frames {
		s.conn.Send(f)
	}
	held, ok := s.held[ch]
	if !ok {
		return
	}
	past := false // a push past at went out: later ones are past it too
	for _, h := range held {
		// Another epoch than at's is newer: the history expired and
		// started over after it was read.
		if h.m.Offset == 0 || h.m.Offset > at.Offset || h.m.Epoch != at.Epoch {
			s.conn.Send(h.frame)
			past = past || h.m.Offset > 0
		}
	}
	s.unholdLocked(ch)
	if at.Epoch != "" && !past {
		s.dropFloorLocked(ch)
		s.floors = append(s.floors, channelFloor{ch, at})
		s.nwatch.Add(1)
	}
}

// unholdLocked stops holding the pushes of ch, which are held. s.heldMu
// is held.
func (s *session) unholdLocked(ch string) {
	delete(s.held, ch)
	if len(s.held) == 0 {
		s.held = nil // an idle connection keeps no map (~400 bytes)
	}
	s.nwatch.Add(-1)
}

// dropFloorLocked forgets the floor of ch, if it has one. s.heldMu is
// held.
func (s *session) dropFloorLocked(ch string) {
	for i, f := range s.floors {
		if f.channel == ch {
			s.removeFloorLocked(i)
			return
		}
	}
}

// removeFloorLocked forgets floor i. s.heldMu is held.
func (s *session) removeFloorLocked(i int) {
	last := len(s.floors) - 1
	s.floors[i] = s.floors[last]
	s.floors[last] = channelFloor{}
	s.floors = s.floors[:last]
	if last == 0 {
		s.floors = nil
	}
	s.nwatch.Add(-1)
}

// discard stops holding the pushes of ch and drops those held: the
// subscription they came through failed, and the client, told so, must not
// get pushes of a channel it is not subscribed to.
func (s *session) discard(ch string) {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if _, ok := s.held[ch]; ok {
		s.unholdLocked(ch)
	}
}

// join subscribes the session to ch, holding its pushes until release.
func (s *session) join(ctx context.Context, ch string, opts wspush.ChannelOptions) error {
	s.hold(ch)
	if err := s.proto.hub.Subscribe(ctx, ch, s); err != nil {
		// The hub may have delivered to s while the broker was asked;
		// those pushes are held, and go with the failed subscription.
		s.discard(ch)
		s.proto.logger.Warn("subscribe failed", "channel", ch, "err", err)
		return wspush.Errorf(wspush.ErrUnavailable, "subscribe "+ch+" failed: broker unavailable, retry")
	}
	if s.channels == nil {
		s.channels = map[string]struct{}{}
	}
	s.channels[ch] = struct{}{}
	if opts.Presence && s.proto.cfg.Presence != nil {
		if err := s.proto.cfg.Presence.AddPresence(ctx, ch, s.info, s.proto.cfg.PresenceTTL); err != nil {
			s.proto.logger.Warn("presence add failed", "channel", ch, "err", err)
		}
	}
	return nil
}

// leave unsubscribes the session from ch and tells the others.
func (s *session) leave(ctx context.Context, ch string) {
	s.unsubscribe(ctx, ch)
	s.announce(ctx, ch, wspush.KindLeave)
}

// unsubscribe undoes join: the hub, the presence entry, the floor.
func (s *session) unsubscribe(ctx context.Context, ch string) {
	delete(s.channels, ch)
	s.heldMu.Lock()
	s.dropFloorLocked(ch) // a later subscribe starts from its own position
	s.heldMu.Unlock()
	if err := s.proto.hub.Unsubscribe(ctx, ch, s); err != nil {
		s.proto.logger.Warn("broker unsubscribe failed", "channel", ch, "err", err)
	}
	opts, _ := s.proto.cfg.Namespaces.Lookup(ch)
	if opts.Presence && s.proto.cfg.Presence != nil {
		if err := s.proto.cfg.Presence.RemovePresence(ctx, ch, s.info.ClientID); err != nil {
			s.proto.logger.Warn("presence remove failed", "channel", ch, "err", err)
		}
	}
}

// announce publishes a join or leave message where the namespace asks for
// them. It costs nothing where it does not.
func (s *session) announce(ctx context.Context, ch string, kind wspush.Kind) {
	if opts, _ := s.proto.cfg.Namespaces.Lookup(ch); !opts.JoinLeave {
		return
	}
	m := &wspush.Message{Kind: kind, Channel: ch, Client: &s.info}
	if _, err := s.proto.hub.Publish(ctx, m, wspush.PublishOptions{}); err != nil {
		s.proto.logger.Warn("join/leave publish failed", "channel", ch, "err", err)
	}
}

func (s *session) channelList() []string {
	l := make([]string, 0, len(s.channels))
	for ch := range s.channels {
		l = append(l, ch)
	}
	sort.Strings(l)
	return l
}

// HandleMessage implements ws.Session: it runs one command.
func (s *session) HandleMessage(binary bool, payload []byte) {
	if binary {
		if s.allow(nil) {
			s.strike(nil, wspush.Errorf(wspush.ErrBadRequest, "binary frames are not supported: send JSON text frames"))
		}
		return
	}
	// Decoded before the rate limit, so that a rate_limited reply carries
	// the command's id.
	cmd, err := DecodeCommand(payload)
	if !s.allow(cmd.ID) {
		return
	}
	if err != nil {
		s.strike(cmd.ID, err)
		return
	}
	s.strikes = 0
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	switch cmd.Op {
	case OpPing:
		s.reply(cmd.ID, nil)
	case OpSubscribe:
		s.handleSubscribe(ctx, cmd)
	case OpUnsubscribe:
		s.reply(cmd.ID, s.handleUnsubscribe(ctx, cmd))
	case OpPublish:
		s.handlePublish(ctx, cmd)
	case OpHistory:
		s.handleHistory(ctx, cmd)
	case OpPresence, OpPresenceStats:
		s.handlePresence(ctx, cmd)
	default:
		s.reply(cmd.ID, wspush.Errorf(wspush.ErrUnknownOp, "unknown op "+strconv.Quote(cmd.Op)+": want subscribe, unsubscribe, publish, ping, history, presence or presence_stats"))
	}
}

// handleSubscribe subscribes, then replies with the channel's position
// (when it keeps history) and, for a subscription with since, the missed
// messages, and only then lets live messages through: no gap, no
// duplicate, whatever is published meanwhile.
func (s *session) handleSubscribe(ctx context.Context, cmd Command) {
	opts, err := s.proto.checkChannel(cmd.Channel)
	if err != nil {
		s.reply(cmd.ID, err)
		return
	}
	if err := checkSince(cmd.Since); err != nil {
		s.reply(cmd.ID, err)
		return
	}
	if _, ok := s.channels[cmd.Channel]; ok {
		s.reply(cmd.ID, nil)
		return
	}
	if len(s.channels) >= s.proto.cfg.MaxSubscriptions {
		s.reply(cmd.ID, wspush.Errorf(wspush.ErrTooLarge, "subscription limit reached: at most "+strconv.Itoa(s.proto.cfg.MaxSubscriptions)+" channels per connection"))
		return
	}
	if err := s.join(ctx, cmd.Channel, opts); err != nil {
		s.reply(cmd.ID, err)
		return
	}
	hist := s.proto.cfg.History
	if opts.HistorySize <= 0 || hist == nil {
		// No history: recovery cannot be, and there is no position.
		extra := func(b []byte) []byte { return b }
		if cmd.Since != nil {
			extra = func(b []byte) []byte { return append(b, `,"recovered":false`...) }
		}
		s.release(cmd.Channel, wspush.StreamPosition{}, s.proto.enc.replyWith(cmd.ID, nil, extra))
		s.announce(ctx, cmd.Channel, wspush.KindJoin)
		return
	}
	q := wspush.HistoryQuery{Limit: 1} // only the position, without since
	if cmd.Since != nil {
		// One more than may be replayed: to know when there are more. Not
		// bounded by history_size: a history shared with nodes configured
		// otherwise (a rolling change) may hold more.
		q = wspush.HistoryQuery{Since: cmd.Since, Limit: s.proto.cfg.RecoveryMaxMessages + 1}
	}
	res, err := hist.History(ctx, cmd.Channel, q)
	if err != nil {
		s.proto.logger.Warn("history read failed", "channel", cmd.Channel, "err", err)
		// Subscribed all the same; the client cannot trust its offsets.
		s.release(cmd.Channel, wspush.StreamPosition{}, s.proto.enc.replyWith(cmd.ID, nil, func(b []byte) []byte {
			return append(b, `,"recovered":false`...)
		}))
		s.announce(ctx, cmd.Channel, wspush.KindJoin)
		return
	}
	recovered := cmd.Since != nil && res.Complete && reaches(*cmd.Since, res)
	frames := [][]byte{nil} // the reply, then the recovered messages
	if recovered {
		size := 0
		for _, m := range res.Messages {
			f := s.proto.enc.Encode(m)
			size += len(f)
			frames = append(frames, f)
		}
		if len(res.Messages) > s.proto.cfg.RecoveryMaxMessages || size > s.proto.cfg.ReplyMaxBytes {
			// More than the send queue takes at once: the client pages
			// through the history op or reloads.
			recovered, frames = false, frames[:1]
		}
	}
	frames[0] = s.proto.enc.replyWith(cmd.ID, nil, func(b []byte) []byte {
		b = appendPosition(b, res.Position)
		if cmd.Since != nil {
			b = append(b, `,"recovered":`...)
			b = strconv.AppendBool(b, recovered)
		}
		return b
	})
	s.release(cmd.Channel, res.Position, frames...) // live pushes at or before it are in the history
	s.announce(ctx, cmd.Channel, wspush.KindJoin)
}

// reaches reports whether the messages of res, read after since, lead
// up to res's position: recovery says so only when it replays every
// message up to the reply's offset.
func reaches(since wspush.StreamPosition, res wspush.HistoryResult) bool {
	last := since.Offset
	if n := len(res.Messages); n > 0 {
		last = res.Messages[n-1].Offset
	}
	return last == res.Position.Offset
}

// checkSince validates a since position.
func checkSince(since *wspush.StreamPosition) error {
	if since == nil {
		return nil
	}
	if len(since.Epoch) > 64 {
		return wspush.Errorf(wspush.ErrBadRequest, "since.epoch is too long")
	}
	return nil
}

func (s *session) handleUnsubscribe(ctx context.Context, cmd Command) error {
	if _, err := s.proto.checkChannel(cmd.Channel); errors.Is(err, wspush.ErrBadRequest) {
		return err // a name no subscription can have; an unknown namespace is fine
	}
	if _, ok := s.channels[cmd.Channel]; ok {
		s.leave(ctx, cmd.Channel)
	}
	return nil
}

func (s *session) handlePublish(ctx context.Context, cmd Command) {
	opts, err := s.proto.checkChannel(cmd.Channel)
	switch {
	case err != nil:
	case !opts.ClientPublish:
		err = wspush.Errorf(wspush.ErrForbidden, "clients may not publish to "+strconv.Quote(cmd.Channel)+": client_publish is off for its namespace")
	case cmd.Data == nil:
		err = wspush.Errorf(wspush.ErrBadRequest, "missing data")
	case !wspush.DataDepthWithin(cmd.Data, wspush.MaxDataDepth):
		err = wspush.Errorf(wspush.ErrBadRequest, "data nested deeper than "+strconv.Itoa(wspush.MaxDataDepth)+" levels")
	}
	if err != nil {
		s.reply(cmd.ID, err)
		return
	}
	pos, err := s.proto.hub.Publish(ctx, &wspush.Message{Channel: cmd.Channel, Data: wspush.CompactData(cmd.Data)}, opts.PublishOptions())
	if err != nil {
		s.proto.logger.Warn("publish failed", "channel", cmd.Channel, "err", err)
		s.reply(cmd.ID, wspush.Errorf(wspush.ErrUnavailable, "publish failed: broker unavailable, retry"))
		return
	}
	if pos.Offset == 0 {
		s.reply(cmd.ID, nil)
		return
	}
	s.conn.Send(s.proto.enc.replyWith(cmd.ID, nil, func(b []byte) []byte { return appendPosition(b, pos) }))
}

// subscribedChannel checks a channel that a read-only op names: valid,
// subscribed to, and with the namespace option the op needs.
func (s *session) subscribedChannel(ch string) (wspush.ChannelOptions, error) {
	opts, err := s.proto.checkChannel(ch)
	if err != nil {
		return opts, err
	}
	if _, ok := s.channels[ch]; !ok {
		return opts, wspush.Errorf(wspush.ErrForbidden, "subscribe to "+strconv.Quote(ch)+" first")
	}
	return opts, nil
}

func (s *session) handleHistory(ctx context.Context, cmd Command) {
	opts, err := s.subscribedChannel(cmd.Channel)
	if err == nil {
		err = checkSince(cmd.Since)
	}
	hist := s.proto.cfg.History
	if err == nil && (opts.HistorySize <= 0 || hist == nil) {
		err = wspush.Errorf(wspush.ErrNotFound, "no history: history_size is 0 for the namespace of "+strconv.Quote(cmd.Channel))
	}
	limit := opts.HistorySize
	if err == nil && cmd.Limit != nil {
		switch {
		case *cmd.Limit < 0:
			err = wspush.Errorf(wspush.ErrBadRequest, "limit must not be negative")
		case *cmd.Limit > 0:
			limit = min(*cmd.Limit, limit)
		}
	}
	if err != nil {
		s.reply(cmd.ID, err)
		return
	}
	res, err := hist.History(ctx, cmd.Channel, wspush.HistoryQuery{Since: cmd.Since, Limit: min(limit, maxHistoryLimit)})
	if err != nil {
		s.proto.logger.Warn("history read failed", "channel", cmd.Channel, "err", err)
		s.reply(cmd.ID, wspush.Errorf(wspush.ErrUnavailable, "history unavailable, retry"))
		return
	}
	msgs := fitReply(res.Messages, cmd.Since == nil, s.proto.cfg.ReplyMaxBytes)
	s.conn.Send(s.proto.enc.replyWith(cmd.ID, nil, func(b []byte) []byte {
		b = appendPosition(b, res.Position)
		if cmd.Since != nil {
			b = append(b, `,"complete":`...)
			b = strconv.AppendBool(b, res.Complete)
		}
		b = append(b, `,"messages":[`...)
		for i, m := range msgs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"offset":`...)
			b = strconv.AppendUint(b, m.Offset, 10)
			b = append(b, `,"data":`...)
			b = append(b, m.Data...)
			b = append(b, '}')
		}
		return append(b, ']')
	}))
}

// fitReply returns as many of msgs as a reply of about maxBytes holds, at
// least one: the newest with newest set, else the oldest (a client pages
// on with since the last offset).
func fitReply(msgs []*wspush.Message, newest bool, maxBytes int) []*wspush.Message {
	const overhead = 32 // {"offset":N,"data":},
	size, n := 0, 0
	for n < len(msgs) {
		m := msgs[n]
		if newest {
			m = msgs[len(msgs)-1-n]
		}
		size += overhead + len(m.Data)
		if n > 0 && size > maxBytes {
			break
		}
		n++
	}
	if newest {
		return msgs[len(msgs)-n:]
	}
	return msgs[:n]
}

func (s *session) handlePresence(ctx context.Context, cmd Command) {
	opts, err := s.subscribedChannel(cmd.Channel)
	pres := s.proto.cfg.Presence
	if err == nil && (!opts.Presence || pres == nil) {
		err = wspush.Errorf(wspush.ErrNotFound, "no presence: presence is off for the namespace of "+strconv.Quote(cmd.Channel))
	}
	if err != nil {
		s.reply(cmd.ID, err)
		return
	}
	if cmd.Op == OpPresenceStats {
		st, err := pres.PresenceStats(ctx, cmd.Channel)
		if err != nil {
			s.reply(cmd.ID, wspush.Errorf(wspush.ErrUnavailable, "presence unavailable, retry"))
			return
		}
		s.conn.Send(s.proto.enc.replyWith(cmd.ID, nil, func(b []byte) []byte {
			b = append(b, `,"num_clients":`...)
			b = strconv.AppendInt(b, int64(st.Clients), 10)
			b = append(b, `,"num_users":`...)
			return strconv.AppendInt(b, int64(st.Users), 10)
		}))
		return
	}
	clients, err := pres.Presence(ctx, cmd.Channel)
	if err != nil {
		s.reply(cmd.ID, wspush.Errorf(wspush.ErrUnavailable, "presence unavailable, retry"))
		return
	}
	reply := s.proto.enc.replyWith(cmd.ID, nil, func(b []byte) []byte {
		return appendClients(append(b, `,"clients":`...), clients)
	})
	if len(reply) > s.proto.cfg.ReplyMaxBytes {
		// More than the send queue takes at once (it would close the
		// connection as a slow consumer): the count, and the API, serve.
		s.reply(cmd.ID, wspush.Errorf(wspush.ErrTooLarge, strconv.Itoa(len(clients))+" clients are more than a reply holds: ask presence_stats, or GET /api/presence/"+cmd.Channel))
		return
	}
	s.conn.Send(reply)
}

// appendClients appends clients as a JSON list sorted by client id.
func appendClients(b []byte, clients map[string]wspush.ClientInfo) []byte {
	ids := make([]string, 0, len(clients))
	for id := range clients {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		c := clients[id]
		b = appendClient(b, &c)
	}
	return append(b, ']')
}

func (s *session) reply(id *int64, err error) {
	s.conn.Send(s.proto.enc.reply(id, err))
}

// strike answers a malformed frame; too many in a row close the connection.
func (s *session) strike(id *int64, err error) {
	s.strikes++
	if s.strikes >= maxStrikes {
		s.conn.Close(ws.CloseAppProtocolError, "protocol error: too many malformed frames")
		return
	}
	s.reply(id, err)
}

// allow applies the per-connection command rate limit (a token bucket). A
// command over the limit gets rate_limited; a client that keeps sending
// regardless is closed with 4008.
func (s *session) allow(id *int64) bool {
	if s.spend("commands") {
		return true
	}
	s.reply(id, wspush.Errorf(wspush.ErrRateLimited, "rate limited: at most "+strconv.FormatFloat(s.proto.cfg.RateLimit, 'f', -1, 64)+" commands per second"))
	return false
}

// HandlePing implements ws.PingLimiter: a WebSocket ping costs what a
// command does. Every ping still gets its pong (clients take a missing one
// for a dead connection), but a client that keeps pinging a whole burst
// past its limit is closed with 4008, as one that keeps sending commands.
func (s *session) HandlePing() { s.spend("pings") }

// spend takes a token from the connection's bucket. With none left it
// reports false, and closes the connection with 4008 once the client is a
// whole burst in debt; what names the frames in the close reason.
func (s *session) spend(what string) bool {
	now := time.Now()
	cfg := &s.proto.cfg
	s.tokens = min(s.tokens+now.Sub(s.refill).Seconds()*cfg.RateLimit, float64(cfg.RateBurst))
	s.refill = now
	s.tokens--
	if s.tokens >= 0 {
		return true
	}
	if s.tokens < -float64(cfg.RateBurst) {
		s.conn.Close(ws.CloseRateLimited, "rate limited: too many "+what)
	}
	return false
}

// Closed implements ws.Session: the connection is gone, so are its
// subscriptions, its presence, and the others hear that it left.
func (s *session) Closed() {
	s.proto.hub.Disconnect(s)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	for ch := range s.channels {
		s.leave(ctx, ch)
	}
	s.channels = nil
}
