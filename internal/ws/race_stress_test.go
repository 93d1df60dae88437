package ws

import (
	"net"
	"sync"
	"testing"
	"time"
)

// hammer connects clients to addr in a loop, each closing after a short
// read, until stop is closed.
func hammer(addr string, clients int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				nc, err := net.DialTimeout("tcp", addr, waitTimeout)
				if err != nil {
					return
				}
				_, _ = nc.Write([]byte(handshakeRequest(addr)))
				_ = nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				var b [256]byte
				_, _ = nc.Read(b[:])
				nc.Close()
			}
		})
	}
	return &wg
}

// TestRunEndDuringUpgrades ends Run while clients keep connecting. An
// upgrade under way must not register its connection after Run's final
// teardown (it would never be closed), nor start a goroutine while Run
// waits for them (sync: WaitGroup is reused before previous Wait has
// returned).
func TestRunEndDuringUpgrades(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		for round := range 10 {
			h := newHarness(t, cfg)
			stop := make(chan struct{})
			wg := hammer(h.addr, 8, stop)
			eventually(t, waitTimeout, func() bool { return h.srv.Stats().Accepted > uint64(round%4) }, "upgrades")
			h.endRun() // checks every session was closed once and none is left
			close(stop)
			wg.Wait()
			h.hs.Close()
			if t.Failed() {
				return
			}
		}
	})
}

// TestShutdownDuringUpgrades calls Shutdown while clients keep connecting:
// once it has returned, no connection registers any more.
func TestShutdownDuringUpgrades(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		for round := range 10 {
			h := newHarness(t, cfg)
			stop := make(chan struct{})
			wg := hammer(h.addr, 8, stop)
			eventually(t, waitTimeout, func() bool { return h.srv.Stats().Accepted > uint64(round%4) }, "upgrades")
			ctx, cancel := contextWithTimeout(waitTimeout)
			err := h.srv.Shutdown(ctx)
			cancel()
			if err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			accepted := h.srv.Stats().Accepted
			close(stop)
			wg.Wait()
			if st := h.srv.Stats(); st.Accepted != accepted {
				t.Fatalf("%d connections registered after Shutdown returned", st.Accepted-accepted)
			}
			h.stop()
		}
	})
}
