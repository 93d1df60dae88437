package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Client is a connection to a wspush server that stays up. When the
// connection drops it dials again after a growing delay, subscribes again
// to its channels and, where a channel keeps history, recovers the
// messages it missed, so that Messages reads as one stream across
// reconnects: no gap, no duplicate, in order.
//
// Where the missed messages cannot be recovered (the server restarted
// with the memory broker, the history no longer reaches back, or the
// channel keeps none), Messages has a "reset" push for the channel at the
// place of the gap: Since is the last position received (nil for a
// channel without history), Offset and Epoch the channel's position when
// it was subscribed again. An application that keeps state from the
// channel reloads it there.
//
// A subscription the server refuses for good (forbidden, not_found) is
// dropped, with an "unsubscribed" push carrying the refusal (a Subscribe
// waiting for it returns the refusal too); refusals that may pass
// (rate_limited, unavailable, internal) are tried again with the same
// back-off.
//
// A Client gives up only on Close, on a close with code 4003 (forbidden),
// and on a handshake refused with an HTTP 4xx other than 408 and 429.
//
// Replies to calls are read in order with the pushes: read Messages in a
// goroutine other than the ones making calls, or a full buffer stops the
// replies too.
type Client struct {
	url  string
	opts ClientOptions
	msgs chan Push

	ctx        context.Context // ended by Close
	cancel     context.CancelFunc
	done       chan struct{} // closed when run returns
	inCallback atomic.Bool   // run is in OnConnect or OnDisconnect

	// sendMu orders the subscribe and unsubscribe commands of the Client,
	// from its check of subs to the write: an Unsubscribe is never
	// overtaken by a subscribe the Client sends again by itself.
	sendMu sync.Mutex

	mu   sync.Mutex
	conn *Conn         // the current connection; nil while there is none
	gen  uint64        // counts connections; a reply of an older one is stale
	up   chan struct{} // closed while conn is set
	subs map[string]*subscription
	err  error // why the Client stopped
}

// subscription is a channel the Client keeps subscribed.
type subscription struct {
	pos       *Position     // of the last message received, or of the subscribe reply
	sent      uint64        // the connection its subscribe went out on
	retries   int           // refusals that may pass, in a row
	retry     *time.Timer   // the next try after one, if armed
	confirmed chan struct{} // closed at the first confirmation or a final refusal
	err       error         // the final refusal
}

// ClientOptions tune NewClient. The zero value is fine.
type ClientOptions struct {
	// DialOptions are used for every connection. Buffer is the capacity
	// of Messages (default 1024).
	DialOptions
	// MinDelay and MaxDelay bound the delay before a reconnect (defaults
	// 500 ms and 10 s): try n waits a random time in [d/2, d], where
	// d = min(MaxDelay, MinDelay * 2^n). The count starts again after a
	// connection that stayed up for MaxDelay.
	MinDelay, MaxDelay time.Duration
	// DialTimeout bounds each connection attempt, up to the welcome
	// (default 20 s): a server that accepts and then says nothing is
	// given up and tried again.
	DialTimeout time.Duration
	// OnConnect, if set, is called with the client id of each new
	// connection, before its channels are subscribed again. It may make
	// calls on the Client.
	OnConnect func(clientID string)
	// OnDisconnect, if set, is called when a connection ends or a dial
	// fails, with the reason and the delay before the next try (0 when
	// the Client gives up).
	//
	// Both run on the Client's goroutine, which waits for them. A Close
	// they make does not wait for that goroutine to end.
	OnDisconnect func(err error, retryIn time.Duration)
}

// ErrClientClosed is returned by the calls of a Client after Close.
var ErrClientClosed = errors.New("wspush: client closed")

// ErrUnsubscribed is returned by a Subscribe that an Unsubscribe of the
// same channel overtook.
var ErrUnsubscribed = errors.New("wspush: unsubscribed")

// subscribeWriteTimeout bounds the write of a subscribe the Client sends
// (a variable for the tests).
var subscribeWriteTimeout = DefaultWriteTimeout

// retryCodes are the refusals of a subscribe that may pass.
var retryCodes = map[string]bool{"rate_limited": true, "unavailable": true, "internal": true}

// NewClient returns a Client for url ("ws://host:7777/ws") and starts
// connecting in the background. Close stops it.
func NewClient(url string, opts *ClientOptions) *Client {
	var o ClientOptions
	if opts != nil {
		o = *opts
	}
	if o.MinDelay <= 0 {
		o.MinDelay = 500 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 10 * time.Second
	}
	if o.MaxDelay < o.MinDelay {
		o.MaxDelay = o.MinDelay
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 20 * time.Second
	}
	buf := o.Buffer
	if buf <= 0 {
		buf = 1024
	}
	ctx, cancel := context.WithCancel(context.Background())
	cl := &Client{url: url, opts: o, msgs: make(chan Push, buf), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), up: make(chan struct{}), subs: map[string]*subscription{}}
	go cl.run()
	return cl
}

// Messages returns the pushes of every connection, in order, with the
// Client's own "reset" and "unsubscribed" among them. It is closed when
// the Client stops. A reader that falls behind by more than the buffer
// stops the Client's reading, and in time the server closes the
// connection as a slow consumer; the Client then reconnects and recovers.
func (cl *Client) Messages() <-chan Push { return cl.msgs }

// Done is closed when the Client has stopped.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Err returns why the Client stopped (ErrClientClosed after Close), or nil
// while it runs.
func (cl *Client) Err() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.err
}

// Close stops the Client: it closes the connection and Messages. Calls
// waiting for a connection return ErrClientClosed; calls waiting for a
// reply, the connection's end. It returns nil, also when called again.
func (cl *Client) Close() error {
	cl.stop(ErrClientClosed)
	if !cl.inCallback.Load() {
		<-cl.done
	}
	return nil
}

// stop records why the Client stops, once, ends its context and its
// subscriptions' retry timers.
func (cl *Client) stop(err error) {
	cl.mu.Lock()
	if cl.err == nil {
		cl.err = err
	}
	for _, s := range cl.subs {
		if s.retry != nil {
			s.retry.Stop()
		}
	}
	cl.mu.Unlock()
	cl.cancel()
}

// callback runs f, one of the options' callbacks, on run's goroutine.
func (cl *Client) callback(f func()) {
	cl.inCallback.Store(true)
	defer cl.inCallback.Store(false)
	f()
}

// onDisconnect calls OnDisconnect, if set.
func (cl *Client) onDisconnect(err error, retryIn time.Duration) {
	if cl.opts.OnDisconnect != nil {
		cl.callback(func() { cl.opts.OnDisconnect(err, retryIn) })
	}
}

// run keeps a connection up until the Client stops. It owns every
// connection: it dials, waits for the end and dials again.
func (cl *Client) run() {
	defer close(cl.done)
	defer close(cl.msgs)
	attempt := 0
	for {
		dctx, cancel := context.WithTimeout(cl.ctx, cl.opts.DialTimeout)
		c, err := dial(dctx, cl.url, &cl.opts.DialOptions, connHooks{msgs: cl.msgs, observe: cl.observe})
		cancel()
		if err == nil {
			began := time.Now()
			cl.connected(c)
			select {
			case <-c.Done():
			case <-cl.ctx.Done():
				c.Close()
			}
			cl.disconnected()
			err = c.Err()
			if time.Since(began) >= cl.opts.MaxDelay {
				attempt = 0
			}
		}
		if cl.ctx.Err() != nil {
			return
		}
		if final(err) {
			cl.stop(err)
			cl.onDisconnect(err, 0)
			return
		}
		delay := backoff(attempt, cl.opts.MinDelay, cl.opts.MaxDelay)
		attempt++
		cl.onDisconnect(err, delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-cl.ctx.Done():
			t.Stop()
			return
		}
	}
}

// final reports whether err ends the Client: a close for being forbidden,
// or a handshake the server refuses for a reason a retry does not change.
func final(err error) bool {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code == 4003
	}
	var he *HandshakeError
	if errors.As(err, &he) {
		return he.Status/100 == 4 && he.Status != http.StatusRequestTimeout && he.Status != http.StatusTooManyRequests
	}
	return false
}

// backoff is the delay before try n, counted from 0.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := hi
	if n < 32 && lo<<n < hi && lo<<n > 0 {
		d = lo << n
	}
	return d/2 + rand.N(d/2+1)
}

// connected makes c the current connection and subscribes it to every
// channel of the Client.
func (cl *Client) connected(c *Conn) {
	cl.mu.Lock()
	cl.conn = c
	cl.gen++
	close(cl.up)
	cl.mu.Unlock()
	if cl.opts.OnConnect != nil {
		cl.callback(func() { cl.opts.OnConnect(c.ClientID()) })
	}
	cl.mu.Lock()
	chans := make([]string, 0, len(cl.subs))
	for ch := range cl.subs {
		chans = append(chans, ch)
	}
	cl.mu.Unlock()
	for _, ch := range chans {
		cl.subscribe(ch)
	}
}

// disconnected forgets the connection that ended.
func (cl *Client) disconnected() {
	cl.mu.Lock()
	cl.conn = nil
	cl.up = make(chan struct{})
	cl.mu.Unlock()
}

// subscribe sends channel's subscribe on the current connection, unless
// it already went out on it; its reply is handled by onSubscribed. A
// failed write ends the connection, and the next one subscribes again; a
// subscribe not written at all (the connection busy with another write
// past the timeout) is tried again later on this one.
func (cl *Client) subscribe(channel string) {
	cl.sendMu.Lock()
	defer cl.sendMu.Unlock()
	cl.mu.Lock()
	s, c, gen := cl.subs[channel], cl.conn, cl.gen
	if s == nil || c == nil || s.sent == gen {
		cl.mu.Unlock()
		return
	}
	s.sent = gen
	since := s.pos
	cl.mu.Unlock()
	ctx, cancel := context.WithTimeout(cl.ctx, subscribeWriteTimeout)
	defer cancel()
	_, err := c.send(ctx, subscribeCmd(channel, since), func(f *frame) { cl.onSubscribed(c, gen, channel, s, since, f) })
	if err != nil && c.Err() == nil && cl.ctx.Err() == nil {
		cl.mu.Lock()
		if cl.subs[channel] == s && s.sent == gen {
			s.sent = 0
			cl.retryLocked(channel, s)
		}
		cl.mu.Unlock()
	}
}

// retryLocked arms the next try of channel's subscribe. cl.mu is held.
func (cl *Client) retryLocked(channel string, s *subscription) {
	delay := backoff(s.retries, cl.opts.MinDelay, cl.opts.MaxDelay)
	s.retries++
	s.retry = time.AfterFunc(delay, func() { cl.subscribe(channel) })
}

// onSubscribed handles the reply to the subscribe of channel sent with
// since on connection gen. The connection's reader runs it, so a reset
// it adds lands in Messages between the messages around the gap.
func (cl *Client) onSubscribed(c *Conn, gen uint64, channel string, s *subscription, since *Position, f *frame) {
	cl.mu.Lock()
	if cl.subs[channel] != s || cl.gen != gen {
		cl.mu.Unlock() // unsubscribed meanwhile, or a reply to an older connection
		return
	}
	if f.Error != nil || !f.OK {
		rerr := f.Error
		if rerr == nil {
			rerr = &ReplyError{Code: "internal", Message: "refused without an error"}
		}
		if retryCodes[rerr.Code] {
			s.sent = 0
			cl.retryLocked(channel, s)
			cl.mu.Unlock()
			return
		}
		delete(cl.subs, channel)
		s.settle(rerr)
		cl.mu.Unlock()
		c.deliver(Push{Type: "unsubscribed", Channel: channel, Err: rerr})
		return
	}
	s.retries = 0
	again := isClosed(s.confirmed) // subscribed before, on an earlier connection
	pos := f.position()
	recovered := f.Recovered != nil && *f.Recovered
	if !recovered {
		s.pos = pos // nil for a channel without history; when recovered, the missed messages follow and move it
	}
	var reset *Push
	if !recovered && (again || since != nil) {
		reset = &Push{Type: "reset", Channel: channel, Since: since}
		if pos != nil {
			reset.Offset, reset.Epoch = pos.Offset, pos.Epoch
		}
	}
	s.settle(nil)
	cl.mu.Unlock()
	if reset != nil {
		c.deliver(*reset)
	}
}

// settle ends the wait of Subscribe, with err, unless it ended already.
// The Client's lock is held.
func (s *subscription) settle(err error) {
	if !isClosed(s.confirmed) {
		s.err = err
		close(s.confirmed)
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// observe keeps the position of each message received. The current
// connection's reader calls it before the message is delivered.
func (cl *Client) observe(p *Push) {
	if p.Type != "message" || p.Epoch == "" {
		return
	}
	cl.mu.Lock()
	if s := cl.subs[p.Channel]; s != nil {
		s.pos = &Position{Offset: p.Offset, Epoch: p.Epoch}
	}
	cl.mu.Unlock()
}

// Subscribe subscribes the Client to channel, now and after every
// reconnect, and returns once the server first confirms it (at once for a
// channel already subscribed). With since, the messages published after
// that position come first, when the server still has them; otherwise a
// "reset" push says so. The channel stays subscribed until Unsubscribe,
// also when ctx ends first, unless the server refuses it for good: the
// refusal is then the *ReplyError returned.
func (cl *Client) Subscribe(ctx context.Context, channel string, since *Position) error {
	cl.mu.Lock()
	if cl.err != nil {
		err := cl.err
		cl.mu.Unlock()
		return err
	}
	s := cl.subs[channel]
	if s == nil {
		s = &subscription{confirmed: make(chan struct{})}
		if since != nil {
			p := *since
			s.pos = &p
		}
		cl.subs[channel] = s
	}
	cl.mu.Unlock()
	cl.subscribe(channel)
	select {
	case <-s.confirmed:
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	case <-cl.done:
		return cl.Err()
	}
}

// Position returns the position of the last message the Client received
// from channel (or of its subscribe reply), and false when it has none:
// the channel is not subscribed or keeps no history.
func (cl *Client) Position(channel string) (Position, bool) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if s := cl.subs[channel]; s != nil && s.pos != nil {
		return *s.pos, true
	}
	return Position{}, false
}

// Unsubscribe ends the subscription to channel: the Client no longer
// subscribes it again, and the server's reply, when connected, means no
// more of its messages come.
func (cl *Client) Unsubscribe(ctx context.Context, channel string) error {
	cl.sendMu.Lock()
	cl.mu.Lock()
	s, c := cl.subs[channel], cl.conn
	delete(cl.subs, channel)
	if s != nil {
		s.settle(ErrUnsubscribed)
		if s.retry != nil {
			s.retry.Stop()
		}
	}
	cl.mu.Unlock()
	if c == nil {
		cl.sendMu.Unlock()
		return nil // the next connection will not subscribe it
	}
	reply := make(chan *frame, 1)
	id, err := c.send(ctx, map[string]any{"op": "unsubscribe", "channel": channel}, func(f *frame) { reply <- f })
	cl.sendMu.Unlock()
	if err == nil {
		_, err = c.wait(ctx, id, reply)
	}
	if err != nil && ctx.Err() == nil && c.Err() != nil {
		return nil // the connection ended: nothing is subscribed on it
	}
	return err
}

// Publish publishes data to channel from the client, on the current
// connection, waiting for one if there is none. A publish is not tried
// again after a lost connection: it may have gone through.
func (cl *Client) Publish(ctx context.Context, channel string, data any) error {
	c, err := cl.current(ctx)
	if err != nil {
		return err
	}
	return c.Publish(ctx, channel, data)
}

// Ping asks the server for a reply, on the current connection.
func (cl *Client) Ping(ctx context.Context) error {
	c, err := cl.current(ctx)
	if err != nil {
		return err
	}
	return c.Ping(ctx)
}

// History returns a channel's recent messages, as Conn.History does.
func (cl *Client) History(ctx context.Context, channel string, since *Position, limit int) (*History, error) {
	c, err := cl.current(ctx)
	if err != nil {
		return nil, err
	}
	return c.History(ctx, channel, since, limit)
}

// Presence returns the connections subscribed to channel.
func (cl *Client) Presence(ctx context.Context, channel string) ([]ClientInfo, error) {
	c, err := cl.current(ctx)
	if err != nil {
		return nil, err
	}
	return c.Presence(ctx, channel)
}

// ClientID returns the client id of the current connection, or "" while
// there is none.
func (cl *Client) ClientID() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.conn == nil {
		return ""
	}
	return cl.conn.ClientID()
}

// current returns the current connection, waiting for one until ctx ends
// or the Client stops.
func (cl *Client) current(ctx context.Context) (*Conn, error) {
	for {
		cl.mu.Lock()
		c, up, err := cl.conn, cl.up, cl.err
		cl.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if c != nil {
			return c, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-cl.done:
			return nil, cl.Err()
		}
	}
}
