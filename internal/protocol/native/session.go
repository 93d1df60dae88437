package native

import (
	"context"
	"sort"
	"strconv"
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
	id    string
	ready atomic.Bool // the welcome is queued: pushes may follow

	// Touched only from HandleMessage, Open and Closed (serial).
	channels map[string]struct{}
	tokens   float64 // rate limiter bucket
	refill   time.Time
	strikes  int // malformed frames in a row
}

var _ hub.Subscriber = (*session)(nil)

// ID implements hub.Subscriber.
func (s *session) ID() uint64 { return s.conn.ID() }

// Encoder implements hub.Subscriber.
func (s *session) Encoder() hub.Encoder { return s.proto.enc }

// Send implements hub.Subscriber. Pushes that race the welcome frame are
// dropped: the client cannot have seen its subscription yet.
func (s *session) Send(frame []byte) bool {
	if !s.ready.Load() {
		return false
	}
	return s.conn.Send(frame)
}

func (s *session) subscribe(ch string) {
	if s.channels == nil {
		s.channels = map[string]struct{}{}
	}
	s.channels[ch] = struct{}{}
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
	s.reply(cmd.ID, s.run(cmd))
}

// run executes a decoded command.
func (s *session) run(cmd Command) error {
	switch cmd.Op {
	case OpPing:
		return nil
	case OpSubscribe:
		return s.handleSubscribe(cmd)
	case OpUnsubscribe:
		return s.handleUnsubscribe(cmd)
	case OpPublish:
		return s.handlePublish(cmd)
	}
	return wspush.Errorf(wspush.ErrUnknownOp, "unknown op "+strconv.Quote(cmd.Op)+": want subscribe, unsubscribe, publish or ping")
}

func (s *session) handleSubscribe(cmd Command) error {
	if _, err := s.proto.checkChannel(cmd.Channel); err != nil {
		return err
	}
	if _, ok := s.channels[cmd.Channel]; ok {
		return nil
	}
	if len(s.channels) >= s.proto.cfg.MaxSubscriptions {
		return wspush.Errorf(wspush.ErrTooLarge, "subscription limit reached: at most "+strconv.Itoa(s.proto.cfg.MaxSubscriptions)+" channels per connection")
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if err := s.proto.hub.Subscribe(ctx, cmd.Channel, s); err != nil {
		s.proto.logger.Warn("subscribe failed", "channel", cmd.Channel, "err", err)
		return wspush.Errorf(wspush.ErrUnavailable, "subscribe failed: broker unavailable, retry")
	}
	s.subscribe(cmd.Channel)
	return nil
}

func (s *session) handleUnsubscribe(cmd Command) error {
	if cmd.Channel == "" {
		return wspush.Errorf(wspush.ErrBadRequest, "missing channel")
	}
	if _, ok := s.channels[cmd.Channel]; !ok {
		return nil
	}
	delete(s.channels, cmd.Channel)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if err := s.proto.hub.Unsubscribe(ctx, cmd.Channel, s); err != nil {
		s.proto.logger.Warn("broker unsubscribe failed", "channel", cmd.Channel, "err", err)
	}
	return nil
}

func (s *session) handlePublish(cmd Command) error {
	opts, err := s.proto.checkChannel(cmd.Channel)
	if err != nil {
		return err
	}
	if !opts.ClientPublish {
		return wspush.Errorf(wspush.ErrForbidden, "clients may not publish to "+strconv.Quote(cmd.Channel)+": client_publish is off for its namespace")
	}
	if cmd.Data == nil {
		return wspush.Errorf(wspush.ErrBadRequest, "missing data")
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if err := s.proto.hub.Publish(ctx, &wspush.Message{Channel: cmd.Channel, Data: cmd.Data}); err != nil {
		s.proto.logger.Warn("publish failed", "channel", cmd.Channel, "err", err)
		return wspush.Errorf(wspush.ErrUnavailable, "publish failed: broker unavailable, retry")
	}
	return nil
}

func (s *session) reply(id *int64, err error) {
	s.conn.Send(s.proto.enc.reply(id, err))
}

// strike answers a malformed frame; too many in a row close the connection.
func (s *session) strike(id *int64, err error) {
	s.strikes++
	if s.strikes > maxStrikes {
		s.conn.Close(ws.CloseAppProtocolError, "protocol error: too many malformed frames")
		return
	}
	s.reply(id, err)
}

// allow applies the per-connection command rate limit (a token bucket). A
// command over the limit gets rate_limited; a client that keeps sending
// regardless is closed with 4008.
func (s *session) allow(id *int64) bool {
	now := time.Now()
	cfg := &s.proto.cfg
	s.tokens = min(s.tokens+now.Sub(s.refill).Seconds()*cfg.RateLimit, float64(cfg.RateBurst))
	s.refill = now
	s.tokens--
	if s.tokens >= 0 {
		return true
	}
	if s.tokens < -float64(cfg.RateBurst) {
		s.conn.Close(ws.CloseRateLimited, "rate limited: too many commands")
		return false
	}
	s.reply(id, wspush.Errorf(wspush.ErrRateLimited, "rate limited: at most "+strconv.FormatFloat(cfg.RateLimit, 'f', -1, 64)+" commands per second"))
	return false
}

// Closed implements ws.Session: the connection is gone, so are its
// subscriptions.
func (s *session) Closed() {
	s.ready.Store(false)
	s.proto.hub.Disconnect(s)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	for ch := range s.channels {
		if err := s.proto.hub.Unsubscribe(ctx, ch, s); err != nil {
			s.proto.logger.Warn("broker unsubscribe failed", "channel", ch, "err", err)
		}
	}
	s.channels = nil
}
