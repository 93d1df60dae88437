package ws

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
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
			if _, err := fmt.Sscanf(string(f.payload), "%d %d", &g, &i); err != nil || g < 0 || g >= senders {
				t.Fatalf("frame %q", f.payload)
			}
			if i != next[g] {
				t.Fatalf("sender %d: frame %d arrived, want %d", g, i, next[g])
			}
			next[g]++
		}
		wg.Wait()
	})
}

// TestSendNowToFullSocket sends more than the socket buffers hold to a
// client that reads nothing yet: SendNow returns without waiting for the
// socket, and once the client reads, every byte arrives in order.
func TestSendNowToFullSocket(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		cfg.QueueMaxBytes = 64 << 20
		h := newHarness(t, cfg)
		rc := dialRaw(t, h.addr, nil)
		s := h.session(t)
		const n, size = 300, 40 << 10 // 12 MB
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for i := range n {
				if !s.c.SendNow(numberedFrame(i, size-i)) {
					t.Errorf("SendNow %d failed", i)
					return
				}
			}
		}()
		select {
		case <-sent:
		case <-time.After(waitTimeout):
			t.Fatal("SendNow waited for a client that does not read")
		}
		for i := range n {
			f := rc.mustReadFrame()
			if frameNum(f.payload) != i || len(f.payload) != size-i || strings.Trim(string(f.payload[8:]), ".") != "" {
				t.Fatalf("frame %d: number %d, %d bytes", i, frameNum(f.payload), len(f.payload))
			}
		}
	})
}
