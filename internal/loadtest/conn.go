package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// conn is one client connection: gorilla/websocket did its handshake and
// does its writes (commands, pongs, the close frame); a frameReader reads.
type conn struct {
	ws *websocket.Conn
	fr *frameReader
}

// tapConn records what is read through it while tapping is set. The
// handshake reads through it, so the bytes gorilla/websocket buffered past
// the 101 response (a welcome or heartbeat sent right after the upgrade)
// can be handed to the frame reader that takes over the connection.
type tapConn struct {
	net.Conn
	tapping bool
	rec     []byte
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.tapping {
		c.rec = append(c.rec, p[:n]...)
	}
	return n, err
}

// dialer opens client connections, spreading them over source addresses.
type dialer struct {
	url     string
	timeout time.Duration
	readBuf int
	stamps  bool                // read with kernel receive timestamps where available
	ws      []*websocket.Dialer // one per source address
}

// writeBufs lends gorilla/websocket its write buffers only while a message
// is being written, so idle client connections hold none.
var writeBufs = &sync.Pool{}

func newDialer(t Target, readBuf int) *dialer {
	d := &dialer{url: t.URL, timeout: t.Timeout, readBuf: readBuf}
	srcs := t.sourceIPs()
	for k := range max(len(srcs), 1) {
		nd := &net.Dialer{Timeout: t.Timeout}
		if len(srcs) > 0 {
			nd.LocalAddr = &net.TCPAddr{IP: srcs[k]}
		}
		d.ws = append(d.ws, &websocket.Dialer{
			NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := nd.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &tapConn{Conn: c, tapping: true}, nil
			},
			HandshakeTimeout: t.Timeout,
			ReadBufferSize:   1024, // only the handshake reads through it
			WriteBufferPool:  writeBufs,
		})
	}
	return d
}

// dial opens connection number i (which picks its source address).
func (d *dialer) dial(ctx context.Context, i int) (*conn, error) {
	ws, resp, err := d.ws[i%len(d.ws)].DialContext(ctx, d.url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("handshake: HTTP %d", resp.StatusCode)
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	tc, ok := ws.UnderlyingConn().(*tapConn)
	if !ok { // cannot happen: NetDialContext made it
		ws.Close()
		return nil, errors.New("handshake: unexpected connection type")
	}
	end := bytes.Index(tc.rec, []byte("\r\n\r\n"))
	if end < 0 {
		ws.Close()
		return nil, errors.New("handshake: response header not found")
	}
	pending := tc.rec[end+4:]
	tc.tapping, tc.rec = false, nil
	fr := newFrameReader(tc.Conn, pending, d.readBuf)
	if d.stamps {
		fr.rx = newStampedReader(tc.Conn)
	}
	return &conn{ws: ws, fr: fr}, nil
}

// subscribe subscribes c to channel (if the protocol has a command for
// it) and waits for the confirmation.
func (c *conn) subscribe(p Proto, channel string, timeout time.Duration) error {
	raw := c.fr.conn
	_ = raw.SetDeadline(time.Now().Add(timeout))
	defer raw.SetDeadline(time.Time{})
	if cmd := p.subscribeCommand(channel); cmd != nil {
		if err := c.ws.WriteMessage(websocket.TextMessage, cmd); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
	}
	for {
		op, payload, err := c.fr.next()
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		switch op {
		case opText, opBinary:
			if err := p.subscribeReply(payload); !errors.Is(err, errNotReply) {
				return err
			}
		case opPing:
			c.pong(payload)
		case opClose:
			return fmt.Errorf("subscribe: %w", closeError(payload))
		}
	}
}

// pong answers a ping.
func (c *conn) pong(payload []byte) {
	_ = c.ws.WriteControl(websocket.PongMessage, payload, time.Now().Add(time.Second))
}

// close sends a normal close frame (briefly: the server may be too busy to
// take it) and closes the socket, which ends the connection's reader.
func (c *conn) close() {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(100*time.Millisecond))
	_ = c.ws.Close()
}

// idle reads and discards what the server sends, answering pings, until
// the connection ends.
func (c *conn) idle() error {
	for {
		op, payload, err := c.fr.next()
		if err != nil {
			return err
		}
		switch op {
		case opPing:
			c.pong(payload)
		case opClose:
			c.close() // the answer RFC 6455 asks for; the server sees us gone at once
			return closeError(payload)
		}
	}
}
