package httpapi

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/memory"
	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/protocol/native"
	"github.com/wspush/wspush/internal/ws"
)

// newRouter returns NewServer's router with cfg, over a running memory
// broker, and its hub.
func newRouter(t *testing.T, cfg Config) (http.Handler, *hub.Hub) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	broker := memory.New()
	h := hub.New(broker)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = broker.Run(ctx, h) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for broker.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("broker not ready")
		}
		time.Sleep(time.Millisecond)
	}
	return NewServer(logger, cfg, h, broker, ws.NewServer(logger, ws.Config{}), native.New(logger, native.Config{}, h)), h
}

// newAPIServer serves NewServer's router with cfg through net/http on a
// real loopback socket.
func newAPIServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	router, _ := newRouter(t, cfg)
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	return srv
}

// TestBodyTimeout: a publish whose body stops coming is answered 400 once
// the body timeout has passed, instead of holding its connection and the
// body's buffer for ever; net/http bounds only the head.
func TestBodyTimeout(t *testing.T) {
	srv := newAPIServer(t, Config{APIKey: "k", BodyTimeout: 200 * time.Millisecond})
	for _, size := range []int{100, DefaultMaxPublishSize} { // read eagerly, and grown as it comes
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		head := "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
		if _, err := io.WriteString(c, head+`{"channel":`); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second)) // the test's bound, far past the server's
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("Content-Length %d, body cut short: no answer: %v", size, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "reading body") {
			t.Fatalf("Content-Length %d, body cut short: %d %s; want 400 reading body", size, resp.StatusCode, body)
		}
	}
}

// TestBodySizes: bodies on both sides of the eager read's bound are read
// whole, and a body shorter than its Content-Length is refused.
func TestBodySizes(t *testing.T) {
	srv := newAPIServer(t, Config{APIKey: "k"})
	post := func(body string, length int) (int, string) {
		req, err := http.NewRequest("POST", srv.URL+"/api/publish", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(length)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer k")
		resp, err := srv.Client().Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, size := range []int{eagerBody - 100, eagerBody + 100, DefaultMaxPublishSize - 100} {
		body := `{"channel":"news","data":"` + strings.Repeat("x", size-len(`{"channel":"news","data":""}`)) + `"}`
		if code, answer := post(body, len(body)); code != http.StatusOK {
			t.Errorf("a %d-byte publish: %d %s", len(body), code, answer)
		}
	}
	if code, answer := post(`{"channel":"news","data":1}`, 40000); code == http.StatusOK {
		t.Errorf("a body shorter than its Content-Length: %d %s", code, answer)
	}
}

// failingBroker accepts its first ok publishes, then refuses.
type failingBroker struct{ ok int }

func (b *failingBroker) Publish(context.Context, *wspush.Message, wspush.PublishOptions) (wspush.StreamPosition, error) {
	if b.ok == 0 {
		return wspush.StreamPosition{}, wspush.Errorf(wspush.ErrUnavailable, "down")
	}
	b.ok--
	return wspush.StreamPosition{}, nil
}
func (b *failingBroker) Subscribe(context.Context, string) error   { return nil }
func (b *failingBroker) Unsubscribe(context.Context, string) error { return nil }

// TestPublishFailingPartway: a publish to several channels that the broker
// refuses partway answers 503 and names the channels that have the message.
func TestPublishFailingPartway(t *testing.T) {
	for _, tc := range []struct {
		ok   int
		want string
	}{
		{0, `"message":"down"`}, // the broker's own error: nothing went out
		{2, "after the message went to a, b: retry the other channels"},
	} {
		handler := NewPublishHandler(Config{}, hub.New(&failingBroker{ok: tc.ok}))
		r := httptest.NewRequest("POST", "/api/publish", strings.NewReader(`{"channels":["a","b","c"],"data":1}`))
		r.RemoteAddr = "127.0.0.1:1"
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("broker failing after %d publishes: %d %s; want 503 with %q", tc.ok, w.Code, w.Body, tc.want)
		}
	}
}
