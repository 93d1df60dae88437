package ws

import (
	"io"
	"testing"
)

// TestPacedSendAllocs checks that a frame sent now and then to a polled
// connection, queued and written by the flusher pool, costs no allocation:
// at thousands of deliveries a second, a few allocations per delivery made
// the garbage collector run every second or so, in the middle of fan-outs.
func TestPacedSendAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("measures allocations")
	}
	h := newHarness(t, Config{})
	rc := dialRaw(t, h.addr, nil)
	c := h.session(t).c
	frame := AppendText(nil, make([]byte, 64))
	buf := make([]byte, len(frame))
	send := func() {
		c.Send(frame)
		if _, err := io.ReadFull(rc.br, buf); err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	send() // the connection's queue storage, the pools
	// Under -race, sync.Pool drops items at random: allow a little.
	if n := testing.AllocsPerRun(200, send); n > 0.5 {
		t.Errorf("%.2f allocations per paced send, want 0", n)
	}
}

// BenchmarkPacedSend is one frame sent to a polled connection and read by
// its client before the next: a write per frame, nothing to batch, the
// case of a message every now and then to many idle subscribers.
func BenchmarkPacedSend(b *testing.B) {
	h := newHarness(b, Config{})
	rc := dialRaw(b, h.addr, nil)
	c := h.session(b).c
	frame := AppendText(nil, make([]byte, 64))
	buf := make([]byte, len(frame))
	b.ReportAllocs()
	for b.Loop() {
		c.Send(frame)
		if _, err := io.ReadFull(rc.br, buf); err != nil {
			b.Fatalf("read: %v", err)
		}
	}
}
