package ws

import (
	"errors"
	"runtime"
	"sync"
)

// flusher is the small pool of goroutines that write the queues of polled
// connections. A connection with frames waiting is in its FIFO at most once;
// a worker writes everything the connection has queued with one
// non-blocking writev and, if more arrived meanwhile, puts it back at the
// end. Under load the FIFO grows, each connection waits its turn longer and
// accumulates more frames, and the writes get larger and fewer: batching
// adapts to the load without a timer. A connection whose socket is full
// (the write would block) leaves the pool for a writer goroutine of its own,
// which waits for the socket without holding a worker.
type flusher struct {
	mu      sync.Mutex
	cond    sync.Cond
	queue   []*Conn // queue[head:] waits, oldest first
	head    int
	idle    int // workers waiting in pop
	stopped bool
}

func newFlusher() *flusher {
	f := &flusher{}
	f.cond.L = &f.mu
	return f
}

// push queues c, whose writing flag the caller has set.
func (f *flusher) push(c *Conn) {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	if f.head > 0 && f.head == len(f.queue) {
		f.queue, f.head = f.queue[:0], 0
	}
	f.queue = append(f.queue, c)
	wake := f.idle > 0
	f.mu.Unlock()
	if wake {
		f.cond.Signal()
	}
}

// popBatch waits for connections and moves up to cap(dst) of them into dst.
// It returns an empty slice once the flusher is stopped.
func (f *flusher) popBatch(dst []*Conn) []*Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.head == len(f.queue) && !f.stopped {
		f.idle++
		f.cond.Wait()
		f.idle--
	}
	if f.stopped {
		return dst[:0]
	}
	n := min(cap(dst), len(f.queue)-f.head)
	dst = append(dst[:0], f.queue[f.head:f.head+n]...)
	clear(f.queue[f.head : f.head+n])
	f.head += n
	// Give back the memory of a FIFO that grew under a burst.
	if f.head == len(f.queue) && cap(f.queue) > 4096 {
		f.queue, f.head = nil, 0
	}
	return dst
}

// stop wakes every worker and makes them return.
func (f *flusher) stop() {
	f.mu.Lock()
	f.stopped = true
	clear(f.queue)
	f.queue, f.head = nil, 0
	f.mu.Unlock()
	f.cond.Broadcast()
}

// flushBatch is how many connections a worker takes from the FIFO at once.
const flushBatch = 32

// runFlusher is one worker of the pool; Run owns it.
func (s *Server) runFlusher() {
	defer s.wg.Done()
	buf := make([]*Conn, 0, flushBatch)
	for {
		buf = s.flush.popBatch(buf)
		if len(buf) == 0 {
			return
		}
		// Let the goroutines that are ready run first: under load they are
		// publishers, and what they queue now goes out in the writes below.
		// On an idle server this returns at once.
		runtime.Gosched()
		for i, c := range buf {
			c.flushOnce(false)
			buf[i] = nil
		}
	}
}

// errWouldBlock is a write stopped because the socket is full.
var errWouldBlock = errors.New("write would block")

// flushOnce writes what c has queued without waiting for the socket. It
// runs on a flusher worker, or in SendNow's caller (direct), which owns c's
// writing until it hands it on.
func (c *Conn) flushOnce(direct bool) {
	c.mu.Lock()
	if len(c.queue) == 0 || c.state == stateDone {
		c.stopWritingLocked(nil)
		c.mu.Unlock()
		return
	}
	batch := c.queue
	c.queue, c.queued, c.begun = nil, 0, false
	closing := c.state == stateClosing
	c.mu.Unlock()

	rest, err := c.writev(batch, false)
	switch {
	case errors.Is(err, errWouldBlock) && direct:
		// SendNow's caller holds no count of the server's WaitGroup, so
		// it may not start a writer goroutine (Run could be returning):
		// what is left goes back to the front of the queue, for a worker.
		c.requeue(rest)
		putBatch(batch)
		c.srv.flush.push(c)
		return
	case errors.Is(err, errWouldBlock):
		// The peer reads slower than we write: a goroutine of its own
		// waits for the socket, and the workers go on with the others.
		c.srv.wg.Add(1)
		go c.writeLoop(batch, rest, closing)
		return
	case err != nil:
		c.abort()
		c.mu.Lock()
		c.stopWritingLocked(batch)
		c.mu.Unlock()
		return
	}
	if closing {
		c.closeSent()
	}
	c.mu.Lock()
	if len(c.queue) > 0 && c.state != stateDone {
		c.mu.Unlock()
		putBatch(batch)
		c.srv.flush.push(c) // more came while writing: back of the line
		return
	}
	c.stopWritingLocked(batch)
	c.mu.Unlock()
}

// requeue puts rest, the frames a write left, back before what was queued
// since. Its first frame may be the rest of one the write began (begun).
// c's writing stays owned.
func (c *Conn) requeue(rest [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := make([][]byte, 0, len(rest)+len(c.queue))
	q = append(append(q, rest...), c.queue...)
	putBatch(c.queue)
	c.queue = q
	c.begun = true
	for _, f := range rest {
		c.queued += len(f)
	}
}

// idleQueueCap bounds the queue storage an idle connection keeps.
const idleQueueCap = 4

// stopWritingLocked ends c's writing, whose queue is empty unless c is
// done. spare is a batch written, to give back. An idle connection keeps
// small queue storage, spare if it has none, so that a connection sent a
// frame now and then queues it without allocating: an allocation per
// delivery made the garbage collector run every second or so under a
// steady fan-out, in the middle of fan-outs. c.mu is held.
func (c *Conn) stopWritingLocked(spare [][]byte) {
	c.writing = false
	if c.state == stateDone {
		putBatch(c.queue)
		c.queue, c.queued = nil, 0
	} else if len(c.queue) == 0 && (cap(c.queue) == 0 || cap(c.queue) > idleQueueCap) {
		putBatch(c.queue)
		c.queue = nil
		if cap(spare) <= idleQueueCap {
			clear(spare[:cap(spare)]) // the frames written
			c.queue, spare = spare[:0], nil
		}
	}
	putBatch(spare)
}
