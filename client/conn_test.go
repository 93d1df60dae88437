package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// stalledServer upgrades, sends the welcome if asked, and then reads
// nothing until the test ends: the client's writes fill the socket.
func stalledServer(t *testing.T, welcome bool) (url string, upgraded <-chan struct{}) {
	t.Helper()
	stop := make(chan struct{})
	up := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		up <- struct{}{}
		if welcome {
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome","client_id":"x"}`))
		}
		<-stop
	}))
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(stop); srv.CloseClientConnections(); srv.Close() })
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", up
}

// within fails the test if f has not returned after d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v", what, d)
	}
}

// TestCallsHonourTheirContextOnAStalledServer: against a server that
// stopped reading, a command returns when its context ends, and Close
// returns too; a write used to block for ever, holding every other call.
func TestCallsHonourTheirContextOnAStalledServer(t *testing.T) {
	url, _ := stalledServer(t, true)
	c, err := Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 256<<10)
	var last error
	within(t, 10*time.Second, "publishes with a 200 ms context", func() {
		for range 100 { // far more than the socket buffers hold
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			last = c.Publish(ctx, "chat", big)
			cancel()
			if last != nil && !errors.Is(last, context.DeadlineExceeded) {
				return // the connection was closed after a write cut short
			}
		}
	})
	if last == nil {
		t.Fatal("every publish succeeded against a server that reads nothing")
	}
	within(t, 2*time.Second, "a ping after the stalled write", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := c.Ping(ctx); err == nil {
			t.Error("a ping succeeded on a connection whose write was cut short")
		}
	})
	within(t, 4*time.Second, "Close", func() { _ = c.Close() })
}

// TestCancelledDialStopsWaitingForTheWelcome: a context cancelled without
// a deadline ends Dial's wait for the welcome frame.
func TestCancelledDialStopsWaitingForTheWelcome(t *testing.T) {
	url, upgraded := stalledServer(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		c, err := Dial(ctx, url, nil)
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	<-upgraded // Dial waits for the welcome now
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) && (err == nil || !strings.Contains(err.Error(), "canceled")) {
			t.Fatalf("Dial after cancel: %v, want the cancellation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Dial still waits for the welcome 5 s after its context was cancelled")
	}
}

// TestCloseAfterTheServerClosed: Close on a connection the server closed
// returns nil, and so does a second Close.
func TestCloseAfterTheServerClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome","client_id":"x"}`))
		_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "slow consumer"))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c, err := Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	if err := c.Close(); err != nil {
		t.Fatalf("Close after the server closed: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if c.Err() == nil {
		t.Fatal("Err is nil after the server closed with 4001")
	}
}

// TestCancelledCallOnAStalledServer: calls whose context is cancelled,
// without a deadline, return while one of their writes is blocked on a
// server that reads nothing and the others wait for it.
func TestCancelledCallOnAStalledServer(t *testing.T) {
	var c *Conn
	t.Cleanup(func() { // after the server's cleanup, which unblocks a stuck write
		if c != nil {
			c.Close()
		}
	})
	url, _ := stalledServer(t, true)
	c, err := Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	big := strings.Repeat("x", 256<<10)
	const n = 32 // 8 MiB, more than the socket buffers hold
	errc := make(chan error, n)
	for range n {
		go func() { errc <- c.Publish(ctx, "chat", big) }()
	}
	// Every call is registered, so every one is writing, waiting to
	// write, or (none can: the server never replies) waiting for a reply.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		k := len(c.pending)
		c.mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d calls registered", k, n)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	timeout := time.After(5 * time.Second)
	for i := range n {
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("call %d after cancel: %v, want context.Canceled", i, err)
			}
		case <-timeout:
			t.Fatalf("%d of %d cancelled calls still block 5 s later", n-i, n)
		}
	}
}
