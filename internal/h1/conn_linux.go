package h1

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/nbio"
)

// peekSize is how much of a new connection is peeked to find its request
// line; a longer line goes to net/http.
const peekSize = 512

// conn is a connection watched or served here. Its goroutine (run) owns
// every field but idle and deadline, which the sweeper and Shutdown read.
type conn struct {
	srv    *Server
	nc     net.Conn
	rc     syscall.RawConn
	remote string

	buf *[]byte // bytes read and not answered, (*buf)[:n]; nil when none
	n   int

	// Storage reused from one request to the next, so that a request
	// costs few allocations: handlers do not keep the request.
	head request
	base *http.Request // carries the context; copied into req
	req  http.Request
	url  url.URL
	body bodyReader
	resp response

	// The callbacks of raw reads and writes, and their results.
	readFn, writeFn func(fd uintptr) bool
	wbuf            []byte
	sysN            int
	sysErr          unix.Errno

	// idle is set while the connection waits for a request with nothing
	// read: Shutdown closes such a connection.
	idle atomic.Bool
	// deadline (unix ns; 0: none) is when the sweeper closes the
	// connection: the end of its idle time, or of the time its request
	// has to arrive whole. It is 0 while a handler runs.
	deadline atomic.Int64
	// requestBy is when the request being read must be whole: its first
	// byte's arrival plus ReadHeaderTimeout, however slowly the rest comes
	// (for the first request, the connection's start: peek waited for it).
	requestBy int64
	started   bool // a request was read: the next ones' time runs from their first byte
}

func newConn(s *Server, nc net.Conn) (*conn, error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil, net.UnknownNetworkError(nc.LocalAddr().Network())
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &conn{srv: s, nc: nc, rc: rc, remote: nc.RemoteAddr().String()}
	c.readFn, c.writeFn = c.readOnce, c.writeOnce
	// The first request's time runs from the connection's start: peek
	// waited for its first line within it already.
	c.requestBy = time.Now().Add(s.cfg.ReadHeaderTimeout).UnixNano()
	c.deadline.Store(c.requestBy)
	c.idle.Store(true)
	return c, nil
}

// Buffers of connections with a request in flight: a connection waiting
// for a request holds none.
var (
	readBufs = sync.Pool{New: func() any { b := make([]byte, maxHead); return &b }}
	outBufs  = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
)

// putReadBuf gives b back to the pool, unless grow made it.
func putReadBuf(b *[]byte) {
	if len(*b) == maxHead {
		readBufs.Put(b)
	}
}

// run is the connection's goroutine, owned by the Server: it waits for
// the first request line, then serves the connection or hands it on.
func (c *conn) run(ctx context.Context) {
	switch c.peek() {
	case peekServe:
		c.serve(ctx)
	case peekHandOff:
		c.handOff(nil)
	default:
		c.close()
	}
}

// Outcomes of peek.
const (
	peekServe = iota
	peekHandOff
	peekClosed
)

// peek waits for the first request line of a new connection and looks at
// it, leaving it in the socket, to decide who serves the connection.
func (c *conn) peek() int {
	var b [peekSize]byte
	var n int
	var errno error
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch {
			case errno == unix.EINTR:
				continue
			case errno == unix.EAGAIN:
				return false // wait for data
			case errno == nil && n > 0 && n < peekSize && bytes.IndexByte(b[:n], '\n') < 0:
				return false // wait for the rest of the line
			}
			return true
		}
	})
	if err != nil || errno != nil || n <= 0 {
		return peekClosed
	}
	end := bytes.Index(b[:n], []byte("\r\n"))
	if end < 0 {
		return peekHandOff // a long line or a bare LF: net/http copes
	}
	m, t, ok := requestLine(b[:end])
	if !ok {
		return peekHandOff
	}
	path, _, ok := splitTarget(string(t))
	if !ok || !c.srv.cfg.Fast(string(m), path) {
		return peekHandOff
	}
	return peekServe
}

// serve reads requests and answers every whole one read, with one write
// for the answers to all of them, until the connection ends or sends a
// request that is left to net/http, when it is handed on.
func (c *conn) serve(ctx context.Context) {
	s := c.srv
	for {
		if !c.read() {
			c.close()
			return
		}
		c.deadline.Store(0)
		out := outBufs.Get().(*[]byte)
		rest, closing, handOff := c.answer(ctx, out)
		if !c.flush(out) {
			c.close()
			return
		}
		switch {
		case handOff:
			c.handOff((*c.buf)[rest:c.n])
			return
		case closing:
			c.close()
			return
		}
		if rest > 0 && rest < c.n {
			c.requestBy = time.Now().Add(s.cfg.ReadHeaderTimeout).UnixNano() // the next one began
		}
		c.n = copy(*c.buf, (*c.buf)[rest:c.n])
		if c.n > 0 {
			c.deadline.Store(c.requestBy)
			continue
		}
		putReadBuf(c.buf)
		c.buf = nil
		c.deadline.Store(time.Now().Add(s.cfg.IdleTimeout).UnixNano())
		c.idle.Store(true)
		if s.stopping.Load() {
			c.close()
			return
		}
	}
}

// read waits for bytes and appends them to the buffer, which it takes
// from the pool only once there is something to read. It reports false
// when the connection ended.
func (c *conn) read() bool {
	// The read is tried before waiting, even when it most likely finds
	// nothing: RawRead forgets readiness signalled before it was called.
	err := c.rc.Read(c.readFn)
	n := c.sysN
	if err != nil || c.sysErr != 0 || n <= 0 {
		return false
	}
	if c.n == 0 {
		c.idle.Store(false)
		if c.started {
			c.requestBy = time.Now().Add(c.srv.cfg.ReadHeaderTimeout).UnixNano()
		}
		c.started = true // from now on, each request's time runs from its first byte
	}
	c.n += n
	return true
}

// answer serves the whole requests at the start of the buffer, appending
// their answers to out. rest is where the unanswered bytes start; closing
// means the last answer ends the connection; handOff that the request at
// rest is left to net/http.
func (c *conn) answer(ctx context.Context, out *[]byte) (rest int, closing, handOff bool) {
	s := c.srv
	for rest < c.n {
		b := (*c.buf)[rest:c.n]
		req := &c.head
		err := parseHead(b, s.cfg.MaxBodySize, s.cfg.Fast, req)
		switch {
		case err == errIncomplete:
			return rest, false, false
		case err != nil:
			return rest, false, true
		}
		total := req.headLen + int(req.contentLength)
		if total > len(b) {
			// The buffer grows as the body arrives, doubling when full:
			// a head declaring a large body reserves nothing before its
			// bytes come.
			if total > len(*c.buf) && (c.n == len(*c.buf) || rest > 0) {
				// Room for what the kernel holds already: a body that
				// came at once costs one allocation, a stalled one none.
				c.grow(rest, min(total, max(2*len(*c.buf), c.n-rest+c.queued())))
				rest = 0
			}
			return rest, false, false // wait for the body
		}
		ok := c.call(ctx, req, b[req.headLen:total])
		rest += total
		if !ok {
			return rest, true, false
		}
		*out = c.resp.appendTo(*out, *s.date.Load(), req.close)
		s.served.Add(1)
		if req.close {
			return rest, true, false
		}
	}
	return rest, false, false
}

// queued returns how many bytes the socket holds, not read yet.
func (c *conn) queued() int {
	var q int
	_ = c.rc.Control(func(fd uintptr) { q, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return max(q, 0)
}

// grow moves the request at rest into a buffer of total bytes.
func (c *conn) grow(rest, total int) {
	b := make([]byte, total)
	c.n = copy(b, (*c.buf)[rest:c.n])
	putReadBuf(c.buf)
	c.buf = &b
}

// call runs the handler for one request; false means it panicked, and
// the connection ends without an answer, as in net/http.
func (c *conn) call(ctx context.Context, req *request, body []byte) (ok bool) {
	if c.base == nil {
		c.base = (&http.Request{}).WithContext(ctx)
	}
	c.url = url.URL{Path: req.path, RawQuery: req.query}
	r := &c.req
	*r = *c.base
	r.Method = req.method
	r.URL = &c.url
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header = req.header
	r.ContentLength = req.contentLength
	r.Close = req.close
	r.Host = req.host
	r.RemoteAddr = c.remote
	r.RequestURI = req.target
	r.Body = http.NoBody
	if len(body) > 0 {
		c.body.b = body
		r.Body = &c.body
	}
	c.resp.reset()
	defer func() {
		if v := recover(); v != nil {
			c.srv.logger.Error("panic serving "+r.Method+" "+r.RequestURI, "remote", c.remote, "panic", v)
			ok = false
		}
	}()
	c.srv.cfg.Handler.ServeHTTP(&c.resp, r)
	return true
}

// readOnce is c.readFn, the callback of read's RawRead: a method value
// made once, so that a read allocates nothing.
func (c *conn) readOnce(fd uintptr) bool {
	if c.buf == nil {
		c.buf, c.n = readBufs.Get().(*[]byte), 0
	}
	for {
		c.sysN, c.sysErr = nbio.Read(fd, (*c.buf)[c.n:])
		switch c.sysErr {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if c.n == 0 {
				putReadBuf(c.buf)
				c.buf = nil
			}
			return false // wait for data
		}
		return true
	}
}

// writeOnce is c.writeFn, the callback of flush's RawWrite: it writes
// c.wbuf without waiting.
func (c *conn) writeOnce(fd uintptr) bool {
	for {
		c.sysN, c.sysErr = nbio.Write(fd, c.wbuf)
		if c.sysErr != unix.EINTR {
			return true
		}
	}
}

// flush writes out and gives it back to the pool: one write without
// waiting, and only if the socket is full, a wait of up to WriteTimeout.
// It reports whether everything was written.
func (c *conn) flush(out *[]byte) bool {
	defer func() { *out = (*out)[:0]; outBufs.Put(out) }()
	b := *out
	if len(b) == 0 {
		return true
	}
	c.wbuf = b
	err := c.rc.Write(c.writeFn)
	c.wbuf = nil
	n, errno := c.sysN, c.sysErr
	switch {
	case err != nil || errno != 0 && errno != unix.EAGAIN:
		return false
	case n == len(b):
		return true
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	_, err = c.nc.Write(b[max(n, 0):])
	return err == nil
}

// abort shuts the socket down without closing it, which ends a wait for
// data; the connection's goroutine then closes it.
func (c *conn) abort() {
	_ = c.rc.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	// A read deadline in the past ends a wait for readability too. The
	// shutdown alone did not end peek's: its peeked bytes stay in the
	// socket, a partial line that the next wake-up found unchanged, and
	// the goroutine and descriptor were kept for good.
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// close ends the connection.
func (c *conn) close() {
	c.release()
	_ = c.nc.Close()
}

// handOff gives the connection to net/http with the bytes read and not
// answered.
func (c *conn) handOff(read []byte) {
	nc := c.nc
	if len(read) > 0 {
		nc = &prefixConn{Conn: nc, prefix: bytes.Clone(read)}
	}
	c.release()
	c.srv.handedOff.Add(1)
	c.srv.handoff.give(nc)
}

// release forgets the connection and gives its buffer back.
func (c *conn) release() {
	c.srv.forget(c)
	if c.buf != nil {
		putReadBuf(c.buf)
		c.buf, c.n = nil, 0
	}
}

// bodyReader is the body of a request served here: a slice of the read
// buffer, valid until the handler returns.
type bodyReader struct{ b []byte }

func (r *bodyReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (r *bodyReader) Close() error { return nil }
