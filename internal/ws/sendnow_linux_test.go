package ws

import (
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// inSendNow reports whether the calling goroutine is inside Conn.SendNow.
func inSendNow() bool { return calledFrom(".(*Conn).SendNow") }

// calledFrom reports whether a function whose name ends with suffix is on
// the calling goroutine's stack.
func calledFrom(suffix string) bool {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, suffix) {
			return true
		}
		if !more {
			return false
		}
	}
}

// TestSendNowWritesInTheCaller: on a polled socket with nothing being
// written, SendNow writes the frame itself, while Send leaves it to a
// flusher worker.
func TestSendNowWritesInTheCaller(t *testing.T) {
	var direct, queued atomic.Int64
	h := newHarness(t, Config{}, withServer(func(s *Server) {
		s.writeHook = func(int) {
			if inSendNow() {
				direct.Add(1)
			} else {
				queued.Add(1)
			}
		}
	}))
	rc := dialRaw(t, h.addr, nil)
	s := h.session(t)
	if !s.c.SendNow(AppendText(nil, []byte("now"))) {
		t.Fatal("SendNow refused the frame")
	}
	if f := rc.mustReadFrame(); string(f.payload) != "now" {
		t.Fatalf("read %q, want \"now\"", f.payload)
	}
	if !s.c.Send(AppendText(nil, []byte("later"))) {
		t.Fatal("Send refused the frame")
	}
	if f := rc.mustReadFrame(); string(f.payload) != "later" {
		t.Fatalf("read %q, want \"later\"", f.payload)
	}
	if direct.Load() != 1 || queued.Load() != 1 {
		t.Fatalf("%d writes in SendNow and %d by the workers, want 1 and 1", direct.Load(), queued.Load())
	}
}
