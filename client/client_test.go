package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The Client's reconnects, resubscriptions and recovery against the real
// server are tested end to end in cmd/wspush (e2e_goclient_test.go); these
// tests use servers that misbehave in ways the real one does not.

// wsServer runs handle for each WebSocket connection, after the upgrade.
func wsServer(t *testing.T, handle func(ws *websocket.Conn)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		handle(ws)
	}))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// drain reads until the connection ends, answering pings.
func drain(ws *websocket.Conn) {
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			return
		}
	}
}

// TestSilentServerEndsTheConnection: a server that announces a ping
// interval and then sends nothing, not even pings, is given up after
// twice the interval (a dead network leaves a socket open for minutes).
func TestSilentServerEndsTheConnection(t *testing.T) {
	url := wsServer(t, func(ws *websocket.Conn) {
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome","client_id":"x","ping_interval":1}`))
		drain(ws)
	})
	c, err := Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection to a silent server is still open after 10s")
	}
	if !errors.Is(c.Err(), ErrSilent) {
		t.Fatalf("Err = %v, want ErrSilent", c.Err())
	}
}

// TestPingsKeepTheConnection: a server that pings, and sends nothing else
// for longer than the silence allowed, keeps the connection; each ping is
// answered.
func TestPingsKeepTheConnection(t *testing.T) {
	var pongs atomic.Int32
	url := wsServer(t, func(ws *websocket.Conn) {
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome","client_id":"x","ping_interval":1}`))
		ws.SetPongHandler(func(string) error { pongs.Add(1); return nil })
		read := make(chan struct{})
		go func() { drain(ws); close(read) }() // reads the pongs
		// 3 s of pings: past the 2 s of silence allowed.
		for range 12 {
			if ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)) != nil {
				return
			}
			time.Sleep(250 * time.Millisecond) // the server's pace, not a synchronisation
		}
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"message","channel":"c","data":1}`))
		<-read // until the client closes
	})
	c, err := Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatalf("the connection ended: %v", c.Err())
		}
		if m.Channel != "c" {
			t.Fatalf("push %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	if n := pongs.Load(); n < 8 {
		t.Errorf("%d pongs to 12 pings", n)
	}
}

// TestClientGivesUpOnARefusedHandshake: a handshake refused with a 4xx
// (an origin not allowed, a bad channel list) would be refused again: the
// Client stops with the server's error instead of retrying for ever.
func TestClientGivesUpOnARefusedHandshake(t *testing.T) {
	var tries atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tries.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"error":{"code":"forbidden","message":"origin not allowed"}}`))
	}))
	defer srv.Close()
	var gaveUp atomic.Bool
	cl := NewClient("ws"+strings.TrimPrefix(srv.URL, "http"), &ClientOptions{MinDelay: time.Millisecond,
		OnDisconnect: func(_ error, retryIn time.Duration) { gaveUp.Store(retryIn == 0) }})
	defer cl.Close()
	select {
	case <-cl.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the Client still runs after %d refused handshakes", tries.Load())
	}
	var he *HandshakeError
	if !errors.As(cl.Err(), &he) || he.Status != 403 || he.Code != "forbidden" || he.Message != "origin not allowed" {
		t.Fatalf("Err = %v, want the 403 and its JSON error", cl.Err())
	}
	if n := tries.Load(); n != 1 || !gaveUp.Load() {
		t.Errorf("%d tries, OnDisconnect said it gives up: %v; want 1 and true", n, gaveUp.Load())
	}
	if _, ok := <-cl.Messages(); ok {
		t.Error("Messages is open after the Client stopped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := cl.Subscribe(ctx, "c", nil); !errors.As(err, &he) {
		t.Errorf("Subscribe after the Client stopped: %v, want why it stopped", err)
	}
}

// TestClientRetriesAnUnavailableServer: a 503 passes (a node not ready
// yet); the Client tries again with its back-off, and Close ends it.
func TestClientRetriesAnUnavailableServer(t *testing.T) {
	var tries atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tries.Add(1)
		http.Error(w, `{"error":{"code":"unavailable","message":"not ready"}}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	cl := NewClient("ws"+strings.TrimPrefix(srv.URL, "http"), &ClientOptions{MinDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for tries.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if tries.Load() < 3 {
		t.Fatalf("%d tries in 10s", tries.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := cl.Publish(ctx, "c", 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish without a connection: %v, want its context's end", err)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(cl.Err(), ErrClientClosed) {
		t.Errorf("Err after Close = %v", cl.Err())
	}
}

// TestClientStopsWhenForbidden: a close with 4003 (forbidden) ends the
// Client; any other close is followed by a reconnect.
func TestClientStopsWhenForbidden(t *testing.T) {
	var conns atomic.Int32
	url := wsServer(t, func(ws *websocket.Conn) {
		n := conns.Add(1)
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome","client_id":"x"}`))
		code := 1001 // going away: reconnect
		if n == 2 {
			code = 4003
		}
		_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, "bye"))
		drain(ws)
	})
	cl := NewClient(url, &ClientOptions{MinDelay: time.Millisecond})
	defer cl.Close()
	select {
	case <-cl.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the Client still runs after a 4003")
	}
	var ce *CloseError
	if !errors.As(cl.Err(), &ce) || ce.Code != 4003 {
		t.Fatalf("Err = %v, want the 4003 close", cl.Err())
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (a reconnect after 1001, none after 4003)", n)
	}
}

// TestBackoff: the delay before try n is in [d/2, d], d = min(max,
// min * 2^n), and never overflows.
func TestBackoff(t *testing.T) {
	lo, hi := 500*time.Millisecond, 10*time.Second
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{0, lo}, {1, 2 * lo}, {4, 8 * time.Second}, {5, hi}, {62, hi}, {63, hi}, {1000, hi}} {
		for range 50 {
			if d := backoff(c.n, lo, hi); d < c.want/2 || d > c.want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", c.n, d, c.want/2, c.want)
			}
		}
	}
}

// opServer answers every command ok, except the first subscribe of each
// channel, answered rate_limited when rateLimitFirst; it records the last
// op the server applied to each channel.
type opServer struct {
	mu   sync.Mutex
	last map[string]string
	seen map[string]int
}

func (s *opServer) lastOp(ch string) string { s.mu.Lock(); defer s.mu.Unlock(); return s.last[ch] }
func (s *opServer) subs(ch string) int      { s.mu.Lock(); defer s.mu.Unlock(); return s.seen[ch] }

func startOpServer(t *testing.T, rateLimitFirst bool) (string, *opServer) {
	s := &opServer{last: map[string]string{}, seen: map[string]int{}}
	url := wsServer(t, func(ws *websocket.Conn) {
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome","client_id":"x"}`))
		for {
			var cmd struct {
				ID      int64  `json:"id"`
				Op      string `json:"op"`
				Channel string `json:"channel"`
			}
			if err := ws.ReadJSON(&cmd); err != nil {
				return
			}
			s.mu.Lock()
			reply := fmt.Sprintf(`{"type":"reply","id":%d,"ok":true}`, cmd.ID)
			if cmd.Op == "subscribe" {
				s.seen[cmd.Channel]++
				if rateLimitFirst && s.seen[cmd.Channel] == 1 {
					reply = fmt.Sprintf(`{"type":"reply","id":%d,"ok":false,"error":{"code":"rate_limited","message":"slow down"}}`, cmd.ID)
				} else {
					s.last[cmd.Channel] = "subscribe"
				}
			}
			if cmd.Op == "unsubscribe" {
				s.last[cmd.Channel] = "unsubscribe"
			}
			s.mu.Unlock()
			if ws.WriteMessage(websocket.TextMessage, []byte(reply)) != nil {
				return
			}
		}
	})
	return url, s
}

// TestCloseFromOnDisconnect: an application that gives up from the
// callback can: Close returns. It used to wait for the goroutine that was
// running the callback, for ever.
func TestCloseFromOnDisconnect(t *testing.T) {
	var cl *Client
	var ready sync.WaitGroup
	ready.Add(1)
	returned := make(chan struct{})
	var once sync.Once
	url := wsServer(t, func(ws *websocket.Conn) {
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome","client_id":"x"}`))
		_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1001, "bye"))
		drain(ws)
	})
	cl = NewClient(url, &ClientOptions{MinDelay: time.Millisecond, OnDisconnect: func(error, time.Duration) {
		once.Do(func() {
			ready.Wait()
			cl.Close() // an application giving up from the callback
			close(returned)
		})
	}})
	ready.Done()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Close called from OnDisconnect has not returned after 5s")
	}
}

// TestNoWelcomeIsGivenUp: a server that upgrades and then says nothing (a
// stuck node behind a load balancer) is given up after DialTimeout and
// tried again. The Client used to wait for its welcome for ever.
func TestNoWelcomeIsGivenUp(t *testing.T) {
	url, _ := stalledServer(t, false)
	var disc atomic.Int32
	cl := NewClient(url, &ClientOptions{MinDelay: time.Millisecond, DialTimeout: 200 * time.Millisecond,
		OnDisconnect: func(error, time.Duration) { disc.Add(1) }})
	defer cl.Close()
	deadline := time.Now().Add(10 * time.Second)
	for disc.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if disc.Load() < 2 {
		t.Fatalf("%d tries given up in 10 s, want 2 or more", disc.Load())
	}
}

// TestSinceOnAChannelWithoutHistory: a since given to Subscribe for a
// channel without history does not stay as its position: the reply has
// none. It used to, and went with every resubscription as the Since of
// its resets.
func TestSinceOnAChannelWithoutHistory(t *testing.T) {
	var conns atomic.Int32
	url := wsServer(t, func(ws *websocket.Conn) {
		conns.Add(1)
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome","client_id":"x"}`))
		for {
			var cmd map[string]any
			if ws.ReadJSON(&cmd) != nil {
				return
			}
			b, _ := json.Marshal(cmd["id"])
			extra := ""
			if _, ok := cmd["since"]; ok {
				extra = `,"recovered":false`
			}
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"reply","id":`+string(b)+`,"ok":true`+extra+`}`))
		}
	})
	cl := NewClient(url, nil)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.Subscribe(ctx, "plain", &Position{Offset: 5, Epoch: "old"}); err != nil {
		t.Fatal(err)
	}
	m := <-cl.Messages()
	t.Logf("first push: %+v since %+v", m, m.Since)
	if p, ok := cl.Position("plain"); ok {
		t.Errorf("Position of a channel without history = %+v, true; want false", p)
	}
}

// TestUnsubscribeNotOvertakenByAResubscribe: a subscribe the Client sends
// again by itself (the retry after rate_limited, or the resubscription
// after a reconnect) racing an Unsubscribe reaches the server before the
// unsubscribe, never after. It used to reach it after, in 15-173 of 300
// tries: the server kept a channel the Client had forgotten.
func TestUnsubscribeNotOvertakenByAResubscribe(t *testing.T) {
	url, srv := startOpServer(t, false)
	cl := NewClient(url, nil)
	defer cl.Close()
	go func() {
		for range cl.Messages() {
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 300
	for i := range n {
		ch := fmt.Sprintf("c%d", i)
		if err := cl.Subscribe(ctx, ch, nil); err != nil {
			t.Fatal(err)
		}
		cl.mu.Lock()
		cl.subs[ch].sent = 0 // as onSubscribed does before arming the retry
		cl.mu.Unlock()
		var wg sync.WaitGroup
		wg.Go(func() { cl.subscribe(ch) }) // the retry timer firing
		for {                              // until the retry has left subscribe's locked section
			cl.mu.Lock()
			sent := cl.subs[ch].sent
			cl.mu.Unlock()
			if sent != 0 {
				break
			}
		}
		if err := cl.Unsubscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i := range n {
		if srv.lastOp(fmt.Sprintf("c%d", i)) == "subscribe" {
			bad++
		}
	}
	twice := 0
	for i := range n {
		if srv.subs(fmt.Sprintf("c%d", i)) == 2 {
			twice++
		}
	}
	t.Logf("resubscribe sent in %d/%d", twice, n)
	if bad > 0 {
		t.Errorf("%d/%d channels left subscribed on the server after Unsubscribe returned nil; the Client no longer tracks them", bad, n)
	}
}

// TestSubscribeNotWrittenIsTriedAgain: a subscribe whose write timed out
// waiting for another write (a large Publish on a slow link) was never
// sent, but counted as sent on this connection: nothing sent it again
// until a reconnect, and Subscribe waited for ever. It is tried again.
func TestSubscribeNotWrittenIsTriedAgain(t *testing.T) {
	old := subscribeWriteTimeout
	subscribeWriteTimeout = 100 * time.Millisecond
	defer func() { subscribeWriteTimeout = old }()
	url, srv := startOpServer(t, false)
	cl := NewClient(url, &ClientOptions{MinDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	cl.mu.Lock()
	c := cl.conn
	cl.mu.Unlock()
	c.writeMu.Lock() // another write in progress
	subErr := make(chan error, 1)
	go func() { subErr <- cl.Subscribe(ctx, "late", nil) }()
	// The other write lasts past the subscribe's write timeout: the
	// scenario's length, not a synchronisation.
	time.Sleep(3 * subscribeWriteTimeout)
	c.writeMu.Unlock() // it completes; the connection is fine
	if err := <-subErr; err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if n := srv.subs("late"); n != 1 {
		t.Errorf("the server saw %d subscribes, want 1", n)
	}
}
