package ws

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"testing"
)

// TestSendNowKeepsOrder mixes Send and SendNow from several goroutines:
// every frame arrives, and each goroutine's frames in the order it sent them,
// though a SendNow may find a write under way and only queue.
func TestSendNowKeepsOrder(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg)
		rc := dialRaw(t, h.addr, nil)
		s := h.session(t)
		const senders, each = 4, 500
		var wg sync.WaitGroup
		for g := range senders {
			wg.Go(func() {
				for i := range each {
					f := AppendText(nil, fmt.Appendf(nil, "%d %06d", g, i))
					sent := s.c.Send
					if i%3 != 0 {
						sent = s.c.SendNow
					}
					if !sent(f) {
						t.Errorf("sender %d: frame %d refused", g, i)
						return
					}
				}
			})
		}
		next := make([]int, senders)
		for range senders * each {
			f := rc.mustReadFrame()
			var g, i int
			if _, err := fmt.Sscanf(string(f.payload), "%d %d", &g, &i); f.op != opText || err != nil || g < 0 || g >= senders {
				t.Fatalf("frame %q (op %#x)", f.payload, f.op)
			}
			if i != next[g] {
				t.Fatalf("sender %d: frame %d arrived, want %d", g, i, next[g])
			}
			next[g]++
		}
		wg.Wait()
	})
}

// TestSendNowRacesClose closes a connection while several goroutines
// SendNow to it: every frame SendNow accepted arrives, in each goroutine's
// order and before the close frame, and nothing after it; SendNow refuses
// frames once the connection is closing.
func TestSendNowRacesClose(t *testing.T) {
	const senders, most = 4, 1 << 20 // most: Close comes long before
	forEachMode(t, func(t *testing.T, cfg Config) {
		cfg.QueueMaxMessages = senders*most + 1 // the close must not be an overflow
		cfg.QueueMaxBytes = math.MaxInt
		h := newHarness(t, cfg)
		rc := dialRaw(t, h.addr, nil)
		s := h.session(t)
		accepted := make([]int, senders)
		var wg sync.WaitGroup
		for g := range senders {
			wg.Go(func() {
				for i := range most {
					if !s.c.SendNow(AppendText(nil, fmt.Appendf(nil, "%d %06d", g, i))) {
						return // closing: every later frame is refused too
					}
					accepted[g]++
				}
			})
		}
		next := make([]int, senders) // the frame number expected from each sender
		read := func(f serverFrame) {
			var g, i int
			if _, err := fmt.Sscanf(string(f.payload), "%d %d", &g, &i); f.op != opText || err != nil || g < 0 || g >= senders {
				t.Fatalf("frame %q (op %#x)", f.payload, f.op)
			}
			if i != next[g] {
				t.Fatalf("sender %d: frame %d arrived, want %d", g, i, next[g])
			}
			next[g]++
		}
		// Close once frames are flowing, while the senders still run.
		read(rc.mustReadFrame())
		s.c.Close(CloseNormal, "bye")
		wg.Wait()
		if s.c.SendNow(AppendText(nil, []byte("late"))) {
			t.Error("SendNow after Close accepted a frame")
		}
		for {
			f := rc.mustReadFrame()
			if f.op == opClose {
				if code := int(binary.BigEndian.Uint16(f.payload)); code != CloseNormal {
					t.Fatalf("close code %d, want %d", code, CloseNormal)
				}
				break
			}
			read(f)
		}
		if accepted[0]+accepted[1]+accepted[2]+accepted[3] == senders*most {
			t.Fatal("the senders finished before Close: nothing raced")
		}
		for g := range senders {
			if next[g] != accepted[g] {
				t.Errorf("sender %d: %d frames arrived before the close frame, SendNow accepted %d", g, next[g], accepted[g])
			}
		}
		rc.writeFrame(true, opClose, closePayload(CloseNormal, ""))
		rc.expectEOF()
	})
}
