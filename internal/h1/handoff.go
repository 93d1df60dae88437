package h1

import (
	"net"
	"sync"
)

// handoff is the net.Listener through which connections reach net/http:
// Accept returns what the Server hands on, Close (http.Server.Shutdown
// calls it) makes Accept fail.
type handoff struct {
	addr  net.Addr
	conns chan net.Conn // unbuffered: a hand-off waits for Accept
	done  chan struct{}
	once  sync.Once
}

var _ net.Listener = (*handoff)(nil)

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept returns the next connection handed on.
func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept fail from now on.
func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// Addr is the address of the Server's listener.
func (h *handoff) Addr() net.Addr { return h.addr }

// give hands c to net/http, or closes it once the listener is closed.
func (h *handoff) give(c net.Conn) {
	select {
	case h.conns <- c:
	case <-h.done:
		_ = c.Close()
	}
}

// prefixConn is a connection some of whose bytes were read already: Read
// returns them first.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
