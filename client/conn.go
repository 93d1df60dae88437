package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Push is a frame the server pushes, in the order it arrived.
type Push struct {
	// Type is "message" (a channel's), "broadcast", "join" or "leave". A
	// Client also gives "reset" and "unsubscribed" (see Client).
	Type    string          `json:"type"`
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	// Offset and Epoch are a message's place in its channel's history,
	// where its namespace keeps one; 0 and "" elsewhere. For "reset", the
	// channel's position when it was subscribed again (0 and "" for a
	// channel without history).
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
	// Client is who joined or left, for "join" and "leave".
	Client *ClientInfo `json:"client,omitempty"`
	// Since is, for "reset", the position the client had: what was
	// published after it, up to Offset, was not recovered. Nil when it had
	// none (a channel without history).
	Since *Position `json:"since,omitempty"`
	// Err is, for "unsubscribed", the server's refusal.
	Err *ReplyError `json:"error,omitempty"`
}

// Position is a place in a channel's history: the offset of a message in
// an epoch of the channel. An offset means something only with its epoch.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// ClientInfo is a connection in a channel's presence, or one that joined
// or left.
type ClientInfo struct {
	ClientID string          `json:"client_id"`
	UserID   string          `json:"user_id,omitempty"`
	Info     json.RawMessage `json:"info,omitempty"`
}

// ReplyError is the error of a command the server refused.
type ReplyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *ReplyError) Error() string { return "wspush: " + e.Code + ": " + e.Message }

// CloseError says how the server closed the connection.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("wspush: closed %d %s", e.Code, e.Reason) }

// HandshakeError is the server's refusal of the WebSocket handshake: an
// HTTP answer instead of the switch to WebSocket (a bad ?channels= value,
// an origin not allowed, a server not ready).
type HandshakeError struct {
	Status  int    // HTTP status
	Code    string // the error's stable code, or "http_error"
	Message string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("handshake refused: %d %s: %s", e.Status, e.Code, e.Message)
}

// DialOptions tune Dial. The zero value is fine.
type DialOptions struct {
	Header http.Header // sent with the handshake (Origin, for example)
	// Buffer is how many pushes Messages holds before the reader stops
	// reading (and the server, in time, closes the connection as slow).
	// While it is stopped, command replies are not read either: a caller
	// that makes calls must also drain Messages, from another goroutine.
	Buffer int
	Dialer *websocket.Dialer
}

// Conn is a WebSocket connection speaking the native protocol. It ends
// for good when the connection drops; Client is the one that reconnects.
//
// A Conn notices a server gone silent: when the welcome announces a ping
// interval, a connection that receives nothing (not even a ping) for twice
// that long is closed with ErrSilent.
type Conn struct {
	ws       *websocket.Conn
	clientID string
	msgs     chan Push
	silence  time.Duration // 0: no read deadline
	hooks    connHooks

	writeMu sync.Mutex
	mu      sync.Mutex
	nextID  int64
	pending map[int64]func(*frame) // reply handlers, run by the reader
	err     error
	done    chan struct{} // closed when the reader ends
	closing chan struct{} // closed by Close
	once    sync.Once
}

// connHooks let a Client see what the reader sees, in order.
type connHooks struct {
	msgs    chan Push   // where pushes go, not closed at the end (nil: a channel of the Conn's own)
	observe func(*Push) // called by the reader before a push is delivered
}

// ErrSilent ends a connection that received nothing for twice the server's
// ping interval.
var ErrSilent = errors.New("wspush: the server went silent")

// frame is any server frame.
type frame struct {
	Type         string          `json:"type"`
	ID           *int64          `json:"id"`
	OK           bool            `json:"ok"`
	Error        *ReplyError     `json:"error"`
	Channel      string          `json:"channel"`
	Data         json.RawMessage `json:"data"`
	ClientID     string          `json:"client_id"`
	PingInterval int             `json:"ping_interval"`
	// Positions: pushes and the replies of subscribe, publish and history.
	Offset    *uint64 `json:"offset"`
	Epoch     string  `json:"epoch"`
	Recovered *bool   `json:"recovered"`
	Complete  *bool   `json:"complete"`
	// History and presence replies, join and leave pushes.
	Messages   []HistoryMessage `json:"messages"`
	Clients    []ClientInfo     `json:"clients"`
	Client     *ClientInfo      `json:"client"`
	NumClients int              `json:"num_clients"`
	NumUsers   int              `json:"num_users"`
}

// position is the frame's position, or nil when it carries none.
func (f *frame) position() *Position {
	if f.Offset == nil {
		return nil
	}
	return &Position{Offset: *f.Offset, Epoch: f.Epoch}
}

// Dial connects to url ("ws://host:7777/ws") and waits for the welcome.
func Dial(ctx context.Context, url string, opts *DialOptions) (*Conn, error) {
	return dial(ctx, url, opts, connHooks{})
}

func dial(ctx context.Context, url string, opts *DialOptions, hooks connHooks) (*Conn, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	d := opts.Dialer
	if d == nil {
		d = websocket.DefaultDialer
	}
	ws, resp, err := d.DialContext(ctx, url, opts.Header)
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			code, msg := errorBody(body)
			return nil, fmt.Errorf("wspush: dial %s: %w", url, &HandshakeError{Status: resp.StatusCode, Code: code, Message: msg})
		}
		return nil, fmt.Errorf("wspush: dial %s: %w", url, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(dl)
	}
	// A cancellation without a deadline ends the wait too.
	stop := context.AfterFunc(ctx, func() { _ = ws.UnderlyingConn().SetReadDeadline(aLongTimeAgo) })
	var welcome frame
	err = ws.ReadJSON(&welcome)
	stop()
	if err != nil || welcome.Type != "welcome" {
		ws.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("wspush: no welcome frame: %v", err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	msgs := hooks.msgs
	if msgs == nil {
		buf := opts.Buffer
		if buf <= 0 {
			buf = 1024
		}
		msgs = make(chan Push, buf)
	}
	c := &Conn{ws: ws, clientID: welcome.ClientID, msgs: msgs, hooks: hooks,
		pending: map[int64]func(*frame){}, done: make(chan struct{}), closing: make(chan struct{})}
	if welcome.PingInterval > 0 {
		c.silence = 2 * time.Duration(welcome.PingInterval) * time.Second
		ws.SetPingHandler(c.onPing)
	}
	go c.readLoop()
	return c, nil
}

// onPing answers a ping, as gorilla's default handler does, and counts it
// as a sign of life.
func (c *Conn) onPing(data string) error {
	_ = c.ws.SetReadDeadline(time.Now().Add(c.silence))
	err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	var ne net.Error
	if err == websocket.ErrCloseSent || errors.As(err, &ne) {
		return nil // the read side reports what went wrong
	}
	return err
}

// ClientID returns the id the server gave the connection.
func (c *Conn) ClientID() string { return c.clientID }

// Messages returns the pushes received, in order. It is closed when the
// connection ends; Err then says why.
func (c *Conn) Messages() <-chan Push { return c.msgs }

// Err returns why the connection ended (a *CloseError when the server
// closed it), or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

func (c *Conn) readLoop() {
	if c.hooks.msgs == nil {
		defer close(c.msgs)
	}
	for {
		if c.silence > 0 {
			_ = c.ws.SetReadDeadline(time.Now().Add(c.silence))
		}
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			var ne net.Error
			switch {
			case errors.As(err, &ce):
				err = &CloseError{Code: ce.Code, Reason: ce.Text}
			case errors.As(err, &ne) && ne.Timeout() && c.silence > 0:
				err = ErrSilent
			}
			c.fail(err)
			return
		}
		var f frame
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		switch f.Type {
		case "reply":
			if f.ID == nil {
				continue
			}
			c.mu.Lock()
			h := c.pending[*f.ID]
			delete(c.pending, *f.ID)
			c.mu.Unlock()
			if h != nil {
				h(&f)
			}
		case "message", "broadcast", "join", "leave":
			p := Push{Type: f.Type, Channel: f.Channel, Data: f.Data, Epoch: f.Epoch, Client: f.Client}
			if f.Offset != nil {
				p.Offset = *f.Offset
			}
			if c.hooks.observe != nil {
				c.hooks.observe(&p)
			}
			if !c.deliver(p) {
				c.fail(net.ErrClosed)
				return
			}
		}
	}
}

// deliver hands p to the reader of Messages; false if Close came first.
func (c *Conn) deliver(p Push) bool {
	select {
	case c.msgs <- p:
		return true
	case <-c.closing:
		return false
	}
}

func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.pending = map[int64]func(*frame){}
	c.mu.Unlock()
	close(c.done)
	c.ws.Close()
}

// send writes a command with the next id; the reader runs onReply with
// its reply, in order with the pushes around it. onReply is never run
// when send fails, nor after the connection ended.
func (c *Conn) send(ctx context.Context, cmd map[string]any, onReply func(*frame)) (int64, error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		if ctx.Err() != nil {
			return 0, ctx.Err() // the caller's reason first, as everywhere
		}
		return 0, err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = onReply
	c.mu.Unlock()
	cmd["id"] = id
	b, err := json.Marshal(cmd)
	if err == nil {
		err = c.write(ctx, b)
	}
	if err != nil {
		c.forget(id)
		return 0, err
	}
	return id, nil
}

// forget drops the reply handler of command id.
func (c *Conn) forget(id int64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// call sends a command and waits for its reply: the reply's frame, or the
// server's refusal as a *ReplyError.
func (c *Conn) call(ctx context.Context, cmd map[string]any) (*frame, error) {
	ch := make(chan *frame, 1)
	id, err := c.send(ctx, cmd, func(f *frame) { ch <- f })
	if err != nil {
		return nil, err
	}
	return c.wait(ctx, id, ch)
}

// wait waits for the reply to command id, which its handler puts in ch.
func (c *Conn) wait(ctx context.Context, id int64, ch <-chan *frame) (*frame, error) {
	select {
	case f := <-ch:
		return replied(f)
	case <-c.done:
		select {
		case f := <-ch: // the reply came just before the end
			return replied(f)
		default:
		}
		if ctx.Err() != nil {
			// Both ended: the cancellation may be why (a cancelled write
			// closes the connection), and it is the caller's reason.
			return nil, ctx.Err()
		}
		return nil, c.Err()
	case <-ctx.Done():
		c.forget(id)
		return nil, ctx.Err()
	}
}

// replied is a reply's frame, or its refusal as the error.
func replied(f *frame) (*frame, error) {
	switch {
	case f.Error != nil:
		return nil, f.Error
	case !f.OK:
		return nil, &ReplyError{Code: "internal", Message: "refused without an error"}
	}
	return f, nil
}

// write sends one frame within ctx (at most DefaultWriteTimeout when ctx
// has no deadline). A write cut short leaves part of a frame on the wire,
// after which nothing can follow: the connection is closed, also when ctx
// ends just as the write completes.
func (c *Conn) write(ctx context.Context, b []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err // ended while waiting for the lock: nothing was written
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(DefaultWriteTimeout)
	}
	_ = c.ws.SetWriteDeadline(dl)
	// A cancellation ends a write in progress by closing the connection.
	// (Moving the socket's deadline would not do: gorilla sets it again
	// before each frame it writes, and a large message is many frames.)
	var mu sync.Mutex
	writing := true
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if writing {
			c.ws.Close()
		}
	})
	err := c.ws.WriteMessage(websocket.TextMessage, b)
	mu.Lock()
	writing = false
	mu.Unlock()
	stop()
	if err != nil {
		c.ws.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("wspush: write: %w", err)
	}
	return nil
}

// DefaultWriteTimeout bounds a command's write when its context has no
// deadline.
const DefaultWriteTimeout = 10 * time.Second

var aLongTimeAgo = time.Unix(1, 0)

// Subscribe subscribes to channel and returns once the server confirms.
func (c *Conn) Subscribe(ctx context.Context, channel string) error {
	_, err := c.SubscribeSince(ctx, channel, nil)
	return err
}

// SubscribeReply is the server's answer to a subscribe.
type SubscribeReply struct {
	// Position is the channel's position when the subscription began, for
	// a channel whose namespace keeps history; nil elsewhere.
	Position *Position
	// Recovered is, for a subscribe with a since position, whether the
	// messages published after it follow the reply (true), or cannot be
	// replayed (false: reload the state some other way). Nil without since.
	Recovered *bool
}

// SubscribeSince subscribes to channel; with since, the messages published
// after that position follow the reply when the server still has them
// (docs/protocol.md, "History and recovery"). Subscribing to a channel the
// connection already has does nothing: the reply then has no position.
func (c *Conn) SubscribeSince(ctx context.Context, channel string, since *Position) (SubscribeReply, error) {
	f, err := c.call(ctx, subscribeCmd(channel, since))
	if err != nil {
		return SubscribeReply{}, err
	}
	return SubscribeReply{Position: f.position(), Recovered: f.Recovered}, nil
}

func subscribeCmd(channel string, since *Position) map[string]any {
	cmd := map[string]any{"op": "subscribe", "channel": channel}
	if since != nil {
		cmd["since"] = *since
	}
	return cmd
}

// Unsubscribe ends the subscription to channel.
func (c *Conn) Unsubscribe(ctx context.Context, channel string) error {
	_, err := c.call(ctx, map[string]any{"op": "unsubscribe", "channel": channel})
	return err
}

// Publish publishes data (marshalled to JSON, or a json.RawMessage as it
// is) to channel from the client.
func (c *Conn) Publish(ctx context.Context, channel string, data any) error {
	raw, err := marshal(data)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, map[string]any{"op": "publish", "channel": channel, "data": raw})
	return err
}

// Ping asks the server for a reply.
func (c *Conn) Ping(ctx context.Context) error {
	_, err := c.call(ctx, map[string]any{"op": "ping"})
	return err
}

// HistoryMessage is a message kept in a channel's history.
type HistoryMessage struct {
	Offset uint64          `json:"offset"`
	Data   json.RawMessage `json:"data"`
}

// History is a page of a channel's history.
type History struct {
	Position Position         // the channel's current position
	Messages []HistoryMessage // oldest first
	// Complete is, for a page asked with since, whether Messages are
	// exactly what followed it (as far as the limit goes); false when
	// some were dropped or the epoch changed. Nil without since.
	Complete *bool
}

// History returns a channel's recent messages: with since nil the newest
// limit, otherwise the first limit after since; limit 0 means as many as
// the server gives. The connection must be subscribed to the channel.
func (c *Conn) History(ctx context.Context, channel string, since *Position, limit int) (*History, error) {
	cmd := map[string]any{"op": "history", "channel": channel}
	if since != nil {
		cmd["since"] = *since
	}
	if limit > 0 {
		cmd["limit"] = limit
	}
	f, err := c.call(ctx, cmd)
	if err != nil {
		return nil, err
	}
	h := &History{Messages: f.Messages, Complete: f.Complete}
	if p := f.position(); p != nil {
		h.Position = *p
	}
	return h, nil
}

// Presence returns the connections subscribed to channel, sorted by
// client id. The connection must be subscribed to the channel.
func (c *Conn) Presence(ctx context.Context, channel string) ([]ClientInfo, error) {
	f, err := c.call(ctx, map[string]any{"op": "presence", "channel": channel})
	if err != nil {
		return nil, err
	}
	return f.Clients, nil
}

// PresenceStats counts a channel's subscribers.
type PresenceStats struct {
	NumClients int // connections
	NumUsers   int // distinct non-empty user ids
}

// PresenceStats returns how many are subscribed to channel.
func (c *Conn) PresenceStats(ctx context.Context, channel string) (PresenceStats, error) {
	f, err := c.call(ctx, map[string]any{"op": "presence_stats", "channel": channel})
	if err != nil {
		return PresenceStats{}, err
	}
	return PresenceStats{NumClients: f.NumClients, NumUsers: f.NumUsers}, nil
}

// Close closes the connection normally and waits for the reader to end.
// On a connection already over (closed by the server, or by an error: Err
// says which) it does nothing and returns nil. It does not wait for a
// command's write in progress.
func (c *Conn) Close() error {
	c.once.Do(func() { close(c.closing) })
	select {
	case <-c.done:
		return nil
	default:
	}
	// gorilla/websocket allows WriteControl alongside another write.
	err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
		c.ws.Close()
		<-c.done
	}
	return err
}
