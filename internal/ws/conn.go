package ws

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// Session is the protocol side of one connection, returned by the open
// function given to Server.Upgrade.
type Session interface {
	// HandleMessage handles one complete text or binary message. Calls are
	// serial for a connection; payload is valid only during the call.
	HandleMessage(binary bool, payload []byte)
	// Closed runs once, after the connection is gone. No HandleMessage call
	// follows it.
	Closed()
}

// PingLimiter is a Session that limits the WebSocket pings its peer may
// send. HandlePing runs for every ping, serially with HandleMessage, before
// the pong is queued; it may close the connection, and the pong is then not
// sent.
type PingLimiter interface {
	HandlePing()
}

// connState is the life of a connection's send side.
type connState uint8

const (
	stateOpen    connState = iota // frames are accepted
	stateClosing                  // a close frame is queued or sent; nothing more is accepted
	stateDone                     // nothing more is written; waiting for the read side to tear down
)

// Conn is one WebSocket connection. Its methods are safe for concurrent use.
type Conn struct {
	srv *Server
	nc  net.Conn
	rc  syscall.RawConn // set for plain TCP sockets: reads and writes go through the raw fd
	fd  int             // registered with the poller, or -1
	id  uint64

	lastRead atomic.Int64 // UnixNano of the last byte read (heartbeat)
	lastPing int64        // UnixNano of the last ping sent; only the sweeper touches it

	// Read side: everything below readMu is touched only by its holder.
	readMu     sync.Mutex
	session    Session
	pending    []byte // bytes of a frame not yet complete
	frag       []byte // a fragmented message being assembled
	fragOp     byte   // opcode of frag, or 0 when no fragmented message is open
	ignoreRead bool   // a close was sent or received: discard what the peer still sends
	torn       bool   // teardown has run
	eof        bool   // the peer ended its half of the TCP connection; the send side drains

	// Send side.
	mu            sync.Mutex
	queue         [][]byte // frames not yet taken by the writer
	queued        int      // bytes in queue
	begun         bool     // queue[0] is what a write left of a frame: it must go out, whole, before anything else
	writing       bool     // the flusher pool or a writer goroutine owns the writes
	state         connState
	closeCode     int32         // the code of the close frame sent or received first; 1006 for a drain after EOF
	closeDeadline int64         // UnixNano after which a connection whose close frame is out, or that drains after EOF, is aborted
	peerClosed    bool          // the peer sent a close frame, or ended its half of the connection
	drained       chan struct{} // made by drainAfterEOF for a reader goroutine to wait on; closed by abort or teardown
}

// ID returns the connection's number, unique within the Server.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Send queues frame, a complete frame made by AppendText or FinishText, and
// returns at once. The frame's bytes are shared, never modified, and may be
// sent on many connections. Send reports false when the connection is
// closing or the frame overflowed the queue, in which case the connection is
// closed with CloseSlowConsumer.
func (c *Conn) Send(frame []byte) bool {
	queued, _ := c.enqueue(frame, false)
	return queued
}

// SendNow is Send, except that when no write of the connection is under
// way it writes the queue at once, in the caller's goroutine. The write
// does not wait for the socket: what the socket does not take is left to
// a writer, as with Send. For a message to one connection or a few, this
// costs one write and saves waking a flusher worker, which then does the
// same write; a large fan-out is better left to Send, whose writes batch
// and spread over the workers. On a connection that is not polled (see
// Config.Goroutines) SendNow is Send.
func (c *Conn) SendNow(frame []byte) bool {
	queued, now := c.enqueue(frame, true)
	if now {
		c.flushOnce(true)
	}
	return queued
}

// enqueue queues frame for Send and SendNow. With now, it reports whether
// the caller must write the queue itself, which it then owns the writing
// of as a flusher worker does.
func (c *Conn) enqueue(frame []byte, now bool) (queued, writeNow bool) {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return false, false
	}
	if len(c.queue) >= c.srv.cfg.QueueMaxMessages || c.queued+len(frame) > c.srv.cfg.QueueMaxBytes {
		c.mu.Unlock()
		c.srv.overflows.Add(1)
		c.Close(CloseSlowConsumer, "slow consumer: send queue overflow")
		return false, false
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	if now && !c.writing && c.rc != nil && c.srv.flush != nil {
		c.writing = true
		writeNow = true
	} else {
		c.startWriterLocked()
	}
	c.mu.Unlock()
	return true, writeNow
}

// SendText queues a text frame carrying payload (copied).
func (c *Conn) SendText(payload []byte) bool {
	return c.Send(AppendText(make([]byte, 0, len(payload)+maxHeaderLen), payload))
}

// Close starts the closing handshake with code and reason: frames already
// queued are sent first (for CloseSlowConsumer they are dropped), then the
// close frame. A peer that does not answer within the close timeout of the
// close frame's sending is cut off (one that reads nothing at all, within
// the write timeout). Close does not wait; calls after the first do nothing.
func (c *Conn) Close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

// closeLocked is Close with c.mu held.
func (c *Conn) closeLocked(code int, reason string) {
	if c.state != stateOpen {
		return
	}
	c.state = stateClosing
	c.closeCode = int32(code)
	if code == CloseSlowConsumer {
		// Drop what waits, except the rest of a frame whose start is on
		// the wire: without it the close frame would land inside it.
		keep := 0
		if c.begun {
			keep = 1
		}
		clear(c.queue[keep:])
		c.queue = c.queue[:keep]
		c.queued = 0
		for _, f := range c.queue {
			c.queued += len(f)
		}
	}
	c.queue = append(c.queue, closeFrame(code, reason))
	c.startWriterLocked()
}

// startWriterLocked makes sure something writes c's queue: the flusher
// pool for a polled socket, else a writer goroutine. c.mu is held.
func (c *Conn) startWriterLocked() {
	if c.writing {
		return
	}
	c.writing = true
	if c.rc != nil && c.srv.flush != nil {
		c.srv.flush.push(c)
		return
	}
	c.srv.wg.Add(1)
	go c.writeLoop(nil, nil, false)
}

// writeLoop is the writer goroutine of a connection whose writes must
// wait: it first writes rest (what is left of batch, which ended with the
// close frame if closing), then what is queued, a batch per writev, until
// the queue is empty, then exits. It is the only writer of the socket.
func (c *Conn) writeLoop(batch, rest [][]byte, closing bool) {
	defer c.srv.wg.Done()
	for {
		if len(rest) > 0 {
			_, err := c.writev(rest, true)
			rest = nil
			clear(batch)
			batch = batch[:0]
			if err != nil {
				c.abort()
			} else if closing {
				c.closeSent()
			}
		}
		c.mu.Lock()
		if len(c.queue) == 0 || c.state == stateDone {
			c.stopWritingLocked(batch)
			c.mu.Unlock()
			return
		}
		if batch == nil {
			batch = getBatch()
		}
		batch, c.queue = c.queue, batch
		c.queued, c.begun = 0, false
		closing = c.state == stateClosing // then the close frame ends this batch
		c.mu.Unlock()
		rest = batch
	}
}

// closeSent runs once the close frame is on the wire: the server ends its
// half of the TCP connection, and closes it at once if the peer's close
// frame has arrived already.
func (c *Conn) closeSent() {
	c.mu.Lock()
	c.state = stateDone
	c.closeDeadline = time.Now().Add(c.srv.cfg.CloseTimeout).UnixNano()
	peerClosed := c.peerClosed
	c.mu.Unlock()
	if peerClosed {
		c.abort()
		return
	}
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// abort cuts the connection off without a handshake: pending frames are
// dropped, a blocked write is interrupted, and the read side sees EOF and
// tears the connection down.
func (c *Conn) abort() {
	c.mu.Lock()
	c.state = stateDone
	clear(c.queue)
	c.queue, c.queued = c.queue[:0], 0
	c.releaseDrainedLocked()
	c.mu.Unlock()
	_ = c.nc.SetWriteDeadline(aLongTimeAgo)
	if c.rc != nil {
		_ = c.rc.Control(func(fd uintptr) { _ = shutdownFD(int(fd)) })
		return
	}
	_ = c.nc.Close()
}

var aLongTimeAgo = time.Unix(1, 0)

// teardown ends the connection for good. It runs once, with readMu held.
func (c *Conn) teardown() {
	if c.torn {
		return
	}
	c.torn = true
	c.mu.Lock()
	c.state = stateDone
	clear(c.queue)
	c.queue, c.queued = c.queue[:0], 0
	c.releaseDrainedLocked()
	code := int(c.closeCode)
	c.mu.Unlock()
	if c.fd >= 0 {
		c.srv.poller.Remove(c.fd, c)
	}
	_ = c.nc.Close()
	c.pending, c.frag = nil, nil
	if code == 0 {
		code = 1006 // closed without a close frame
	}
	c.srv.unregister(c, code)
	if c.session != nil {
		c.session.Closed()
	}
}

// drainAfterEOF runs when the peer has ended its half of the TCP connection
// without a close frame. readMu is held. A peer that half-closes may still
// read: if frames wait to be written (replies to what it sent last, most
// likely), they go out, then a close frame (1000 if the connection was
// open, else the one already queued), and drainAfterEOF reports true: the
// read side must wait for abort, which follows the close frame's writing,
// a failed write, or the end of the write timeout, counted from now for
// the whole drain, before tearing down. It reports false when there is
// nothing to send, or when it ran already, and the connection can be torn
// down now. A connection open until the EOF counts as closed without a
// close frame (1006), though one is sent.
func (c *Conn) drainAfterEOF() bool {
	if c.eof {
		return false
	}
	c.mu.Lock()
	drain := c.state != stateDone && (c.writing || len(c.queue) > 0)
	if drain {
		c.peerClosed = true // closeSent aborts once the close frame is out
		c.closeDeadline = time.Now().Add(c.srv.cfg.WriteTimeout).UnixNano()
		if c.fd < 0 {
			c.drained = make(chan struct{}) // for the reader goroutine (epoll waits for the hang-up)
		}
		if c.state == stateOpen {
			c.closeLocked(CloseNormal, "")
			c.closeCode = 1006
		}
	}
	c.mu.Unlock()
	if !drain {
		return false
	}
	c.eof, c.ignoreRead = true, true
	c.pending, c.frag = nil, nil
	return true
}

// releaseDrainedLocked wakes a reader goroutine waiting for the end of a
// drain after EOF. c.mu is held.
func (c *Conn) releaseDrainedLocked() {
	if c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
}

// feed processes bytes read from the socket. readMu is held.
func (c *Conn) feed(data []byte) {
	if c.ignoreRead {
		return
	}
	own := len(c.pending) > 0 // data is c.pending, the frame it starts with
	if own {
		if need := len(c.pending) + len(data); need > cap(c.pending) {
			// Twice what came, never past the frame's end (unless the
			// next frames' bytes came too): a frame that trickles in is
			// copied O(log n) times, and a stalled one holds at most twice
			// what it sent.
			size := max(need, 2*cap(c.pending))
			if h, n, err := parseHeader(c.pending); err == nil && n > 0 && h.length <= int64(c.srv.cfg.ReadLimit) {
				size = max(need, min(n+int(h.length), 2*need))
			}
			p := make([]byte, len(c.pending), size)
			copy(p, c.pending)
			c.pending = p
		}
		c.pending = append(c.pending, data...)
		data = c.pending
	}
	limit := int64(c.srv.cfg.ReadLimit)
	for !c.ignoreRead {
		h, n, err := parseHeader(data)
		if err != nil {
			c.failRead(CloseProtocolError, "protocol error: invalid frame")
			return
		}
		if n == 0 {
			break
		}
		if !h.masked {
			c.failRead(CloseProtocolError, "protocol error: client frames must be masked")
			return
		}
		// Not len(frag)+length > limit: a length near 2^63 would overflow.
		if !h.control() && h.length > limit-int64(len(c.frag)) {
			c.failRead(CloseTooLarge, "message too large")
			return
		}
		end := n + int(h.length)
		if len(data) < end {
			// Keep the partial frame. Its buffer grows as it arrives
			// (append doubles it), from twice what came: a header
			// announcing 64 KiB reserves nothing before the bytes come.
			if !own || cap(data) < min(end, partialFrameMin) {
				p := make([]byte, len(data), min(end, max(2*len(data), partialFrameMin)))
				copy(p, data)
				data = p
			}
			c.pending = data
			return
		}
		payload := data[n:end]
		mask(payload, h.mask)
		c.handleFrame(h, payload)
		data = data[end:]
		own = false // a partial frame left over gets a buffer of its size
	}
	if len(data) == 0 || c.ignoreRead {
		c.pending = nil
		return
	}
	p := make([]byte, len(data), maxHeaderLen)
	copy(p, data)
	c.pending = p
}

// partialFrameMin is the least room a partial frame's buffer starts with.
const partialFrameMin = 4 << 10

// failRead closes the connection for a reading error and ignores the rest.
func (c *Conn) failRead(code int, reason string) {
	c.ignoreRead = true
	c.pending, c.frag = nil, nil
	c.Close(code, reason)
}

// handleFrame handles one complete frame. readMu is held.
func (c *Conn) handleFrame(h header, payload []byte) {
	switch h.op {
	case opPing:
		if pl, ok := c.session.(PingLimiter); ok {
			pl.HandlePing()
		}
		pong := appendHeader(make([]byte, 0, 2+len(payload)), true, opPong, len(payload))
		c.Send(append(pong, payload...))
	case opPong:
	case opClose:
		c.handleClose(payload)
	case opText, opBinary:
		if c.fragOp != 0 {
			c.failRead(CloseProtocolError, "protocol error: new message inside a fragmented one")
			return
		}
		if !h.fin {
			c.fragOp = h.op
			c.frag = append([]byte(nil), payload...)
			return
		}
		c.deliver(h.op, payload)
	case opContinuation:
		if c.fragOp == 0 {
			c.failRead(CloseProtocolError, "protocol error: continuation without a message")
			return
		}
		c.frag = append(c.frag, payload...)
		if h.fin {
			op, msg := c.fragOp, c.frag
			c.fragOp, c.frag = 0, nil
			c.deliver(op, msg)
		}
	}
}

// deliver hands a complete message to the session. readMu is held.
func (c *Conn) deliver(op byte, msg []byte) {
	if op == opText && !utf8.Valid(msg) {
		c.failRead(CloseInvalidPayload, "text message is not valid UTF-8")
		return
	}
	c.session.HandleMessage(op == opBinary, msg)
}

// handleClose answers the peer's close frame. readMu is held.
func (c *Conn) handleClose(payload []byte) {
	code, reason := CloseNormal, ""
	switch {
	case len(payload) == 1:
		code, reason = CloseProtocolError, "protocol error: bad close frame"
	case len(payload) >= 2:
		code = int(binary.BigEndian.Uint16(payload))
		if !validCloseCode(code) || !utf8.Valid(payload[2:]) {
			code, reason = CloseProtocolError, "protocol error: bad close frame"
		}
	}
	c.ignoreRead = true
	c.mu.Lock()
	c.peerClosed = true
	state := c.state
	if c.closeCode == 0 {
		c.closeCode = int32(code)
	}
	c.mu.Unlock()
	switch state {
	case stateOpen:
		c.Close(code, reason) // echo; closeSent aborts once it is written
	case stateDone:
		c.abort() // our close frame went out already: the handshake is complete
	}
}
