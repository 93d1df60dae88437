package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Push is a frame the server pushes: a message of a channel, or a broadcast.
type Push struct {
	Type    string          `json:"type"` // "message" or "broadcast"
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data"`
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

// Conn is a WebSocket connection speaking the native protocol.
type Conn struct {
	ws       *websocket.Conn
	clientID string
	msgs     chan Push

	writeMu sync.Mutex
	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan *ReplyError
	err     error
	done    chan struct{} // closed when the reader ends
	closing chan struct{} // closed by Close
	once    sync.Once
}

// frame is any server frame.
type frame struct {
	Type     string          `json:"type"`
	ID       *int64          `json:"id"`
	OK       bool            `json:"ok"`
	Error    *ReplyError     `json:"error"`
	Channel  string          `json:"channel"`
	Data     json.RawMessage `json:"data"`
	ClientID string          `json:"client_id"`
}

// Dial connects to url ("ws://host:7777/ws") and waits for the welcome.
func Dial(ctx context.Context, url string, opts *DialOptions) (*Conn, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	d := opts.Dialer
	if d == nil {
		d = websocket.DefaultDialer
	}
	ws, resp, err := d.DialContext(ctx, url, opts.Header)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("wspush: dial %s: %w (HTTP %d)", url, err, resp.StatusCode)
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
	buf := opts.Buffer
	if buf <= 0 {
		buf = 1024
	}
	c := &Conn{ws: ws, clientID: welcome.ClientID, msgs: make(chan Push, buf), pending: map[int64]chan *ReplyError{}, done: make(chan struct{}), closing: make(chan struct{})}
	go c.readLoop()
	return c, nil
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
	defer close(c.msgs)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				err = &CloseError{Code: ce.Code, Reason: ce.Text}
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
			ch := c.pending[*f.ID]
			delete(c.pending, *f.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- f.Error
			}
		case "message", "broadcast":
			select {
			case c.msgs <- Push{Type: f.Type, Channel: f.Channel, Data: f.Data}:
			case <-c.closing:
				c.fail(net.ErrClosed)
				return
			}
		}
	}
}

func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	close(c.done)
	c.ws.Close()
}

// call sends a command and waits for its reply.
func (c *Conn) call(ctx context.Context, cmd map[string]any) error {
	ch := make(chan *ReplyError, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	cmd["id"] = id
	b, _ := json.Marshal(cmd)
	if err := c.write(ctx, b); err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return err
	}
	select {
	case rerr := <-ch:
		if rerr != nil {
			return rerr
		}
		return nil
	case <-c.done:
		return c.Err()
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// write sends one frame within ctx (at most DefaultWriteTimeout when ctx
// has no deadline). A write cut short leaves part of a frame on the wire,
// after which nothing can follow: the connection is closed.
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
	stop := context.AfterFunc(ctx, func() { _ = c.ws.UnderlyingConn().SetWriteDeadline(aLongTimeAgo) })
	err := c.ws.WriteMessage(websocket.TextMessage, b)
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
	return c.call(ctx, map[string]any{"op": "subscribe", "channel": channel})
}

// Unsubscribe ends the subscription to channel.
func (c *Conn) Unsubscribe(ctx context.Context, channel string) error {
	return c.call(ctx, map[string]any{"op": "unsubscribe", "channel": channel})
}

// Publish publishes data (marshalled to JSON) to channel from the client.
func (c *Conn) Publish(ctx context.Context, channel string, data any) error {
	raw, err := marshal(data)
	if err != nil {
		return err
	}
	return c.call(ctx, map[string]any{"op": "publish", "channel": channel, "data": raw})
}

// Ping asks the server for a reply.
func (c *Conn) Ping(ctx context.Context) error {
	return c.call(ctx, map[string]any{"op": "ping"})
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
