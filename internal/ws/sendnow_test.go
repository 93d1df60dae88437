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
		seq := senderSeq{t: t, next: make([]int, senders)}
		for range senders * each {
			seq.check(rc.mustReadFrame())
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
		seq := senderSeq{t: t, next: make([]int, senders)}
		// Close once frames are flowing, while the senders still run.
		seq.check(rc.mustReadFrame())
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
			seq.check(f)
		}
		if accepted[0]+accepted[1]+accepted[2]+accepted[3] == senders*most {
			t.Fatal("the senders finished before Close: nothing raced")
		}
		for g := range senders {
			if seq.next[g] != accepted[g] {
				t.Errorf("sender %d: %d frames arrived before the close frame, SendNow accepted %d", g, seq.next[g], accepted[g])
			}
		}
		rc.writeFrame(true, opClose, closePayload(CloseNormal, ""))
		rc.expectEOF()
	})
}

// senderSeq checks text frames "G N" from several senders: each sender's
// numbers arrive in order from 0, with none missing.
type senderSeq struct {
	t    *testing.T
	next []int // the number expected next from each sender
}

func (q *senderSeq) check(f serverFrame) {
	q.t.Helper()
	var g, i int
	if _, err := fmt.Sscanf(string(f.payload), "%d %d", &g, &i); f.op != opText || err != nil || g < 0 || g >= len(q.next) {
		q.t.Fatalf("frame %q (op %#x)", f.payload, f.op)
	}
	if i != q.next[g] {
		q.t.Fatalf("sender %d: frame %d arrived, want %d", g, i, q.next[g])
	}
	q.next[g]++
}
