package ws

import (
	"fmt"
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
