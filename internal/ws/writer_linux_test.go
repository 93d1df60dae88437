package ws

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// inWriteLoop reports whether the calling goroutine is a writer goroutine
// (Conn.writeLoop), which waits for a full socket.
func inWriteLoop() bool { return calledFrom(".(*Conn).writeLoop") }

// workerGate blocks the flusher workers in the write hook while it is
// shut, so that frames pile up in a connection's queue.
type workerGate struct {
	shut    atomic.Bool
	blocked atomic.Int64
	open    chan struct{}
	once    sync.Once
}

// hook is the Server's write hook: writes by the workers wait while the
// gate is shut; SendNow's and the writer goroutines' pass.
func (g *workerGate) hook(int) {
	if g.shut.Load() && !inSendNow() && !inWriteLoop() {
		g.blocked.Add(1)
		<-g.open
	}
}

// holdWorkers shuts the gate and parks every worker on a connection of
// its own.
func (g *workerGate) holdWorkers(t *testing.T, h *harness) {
	t.Helper()
	g.open = make(chan struct{})
	g.shut.Store(true)
	t.Cleanup(g.release) // before the harness stops, on failure too
	for i := range runtime.GOMAXPROCS(0) {
		dialRaw(t, h.addr, nil)
		h.session(t).c.Send(AppendText(nil, []byte("park")))
		eventually(t, waitTimeout, func() bool { return g.blocked.Load() == int64(i+1) }, "worker %d parked", i)
	}
}

// release lets the workers go on. Calls after the first do nothing.
func (g *workerGate) release() {
	g.once.Do(func() {
		g.shut.Store(false)
		close(g.open)
	})
}

// TestWriterLeavesNoDeadline: a connection whose socket was full once, and
// which a writer goroutine served, still takes frames from the workers
// after the write timeout. The writer's deadline used to stay on the
// socket, and the workers' next write failed on it.
func TestWriterLeavesNoDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var waited atomic.Int64
	h := newHarness(t, Config{WriteTimeout: timeout, QueueMaxBytes: 64 << 20}, withServer(func(s *Server) {
		s.writeHook = func(int) {
			if inWriteLoop() {
				waited.Add(1)
			}
		}
	}))
	rc := dialRaw(t, h.addr, nil)
	s := h.session(t)
	frame := AppendText(nil, bytes.Repeat([]byte("x"), 256<<10))
	for range 64 { // 16 MiB, far more than the socket buffers hold
		if !s.c.Send(frame) {
			t.Fatal("Send refused a frame")
		}
	}
	for i := range 64 {
		if f := rc.mustReadFrame(); len(f.payload) != 256<<10 {
			t.Fatalf("frame %d: %d bytes", i, len(f.payload))
		}
	}
	if waited.Load() == 0 {
		t.Fatal("no writer goroutine wrote: the socket never filled")
	}
	time.Sleep(2 * timeout) // past any deadline the writer set
	if !s.c.Send(AppendText(nil, []byte("after"))) {
		t.Fatal("Send refused the frame after the writer's time")
	}
	if f, err := rc.readFrame(); err != nil || string(f.payload) != "after" {
		t.Fatalf("read %q, %v; want \"after\" (closes %v)", f.payload, err, h.srv.Stats().Closes)
	}
}

// TestFullVectorWriteIsNotAFullSocket: more than IOV_MAX frames queued for
// a peer that reads at once are written by the worker in several writes,
// without handing the connection to a writer goroutine (a complete write
// of 1,024 frames used to count as a full socket).
func TestFullVectorWriteIsNotAFullSocket(t *testing.T) {
	var g workerGate
	var waited atomic.Int64
	h := newHarness(t, Config{}, withServer(func(s *Server) {
		s.writeHook = func(n int) {
			if inWriteLoop() {
				waited.Add(1)
			}
			g.hook(n)
		}
	}))
	rc := dialRaw(t, h.addr, nil)
	s := h.session(t)
	g.holdWorkers(t, h)
	const n = 1500
	for i := range n {
		if !s.c.Send(AppendText(nil, []byte{byte('a' + i%26)})) {
			t.Fatalf("Send %d refused", i)
		}
	}
	g.release()
	for i := range n {
		if f := rc.mustReadFrame(); len(f.payload) != 1 || f.payload[0] != byte('a'+i%26) {
			t.Fatalf("frame %d: %q", i, f.payload)
		}
	}
	if w := waited.Load(); w != 0 {
		t.Fatalf("%d writes by a writer goroutine for a peer that reads everything at once, want 0", w)
	}
}

// TestSlowConsumerCloseKeepsABegunFrame: when SendNow's write leaves part
// of a frame and the queue then overflows, the close frame follows the
// rest of that frame; it used to be dropped with the queue, and the close
// frame landed inside its payload.
func TestSlowConsumerCloseKeepsABegunFrame(t *testing.T) {
	var g workerGate
	h := newHarness(t, Config{QueueMaxBytes: 64 << 20, QueueMaxMessages: 8}, withServer(func(s *Server) {
		s.writeHook = g.hook
	}))
	rc := dialRaw(t, h.addr, nil) // reads nothing until the end
	s := h.session(t)
	g.holdWorkers(t, h)
	const size = 256 << 10
	frame := AppendText(nil, bytes.Repeat([]byte("x"), size))
	sent := 0
	for {
		if !s.c.SendNow(frame) {
			t.Fatalf("SendNow refused frame %d", sent)
		}
		sent++
		// A write that stopped short leaves the connection owned (the
		// parked workers will not take it) with its queue's rest.
		s.c.mu.Lock()
		stopped := s.c.writing && len(s.c.queue) > 0
		partial := stopped && len(s.c.queue[0]) < len(frame)
		s.c.mu.Unlock()
		if stopped {
			if !partial {
				t.Skip("the socket filled exactly at a frame's end")
			}
			break
		}
		if sent > 1000 {
			t.Fatal("the socket never filled")
		}
	}
	for s.c.Send(frame) { // until the queue overflows: Close(4001)
	}
	g.release()
	for i := range sent {
		f, err := rc.readFrame()
		if err != nil || f.op != opText || len(f.payload) != size {
			t.Fatalf("frame %d of %d: op %#x, %d bytes, %v: the close frame cut it", i+1, sent, f.op, len(f.payload), err)
		}
	}
	if code, _ := rc.readClose(); code != CloseSlowConsumer {
		t.Fatalf("close code %d, want %d", code, CloseSlowConsumer)
	}
}

// TestWriteTimeoutNeedsNoProgress: a peer that reads steadily, only more
// slowly than the queue would take to go out within the write timeout, is
// not cut off: the timeout bounds a write without progress, not the queue.
func TestWriteTimeoutNeedsNoProgress(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		cfg.WriteTimeout = 300 * time.Millisecond
		cfg.QueueMaxBytes = 64 << 20
		h := newHarness(t, cfg)
		rc := dialRaw(t, h.addr, nil)
		s := h.session(t)
		frame := AppendText(nil, bytes.Repeat([]byte("x"), 128<<10))
		const n = 128 // 16 MiB: at 128 KiB per 10 ms, 1.3 s, over 4 timeouts
		for range n {
			if !s.c.Send(frame) {
				t.Fatal("Send refused a frame")
			}
		}
		start := time.Now()
		for i := range n {
			time.Sleep(10 * time.Millisecond) // the peer's pace, not a synchronization
			if _, err := rc.readFrame(); err != nil {
				t.Fatalf("frame %d after %v: %v (closes %v)", i, time.Since(start).Round(time.Millisecond), err, h.srv.Stats().Closes)
			}
		}
	})
}
