package native

// Tests of the protocol on a real ws.Server, with a scripted broker and
// history: races with the hub that the end-to-end tests cannot steer.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/ws"
)

// serveWS serves proto on a real ws.Server behind httptest; it returns
// the ws:// URL.
func serveWS(t *testing.T, proto *Protocol) string {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := ws.NewServer(logger, ws.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx) }()
	<-srv.Started()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chans, err := proto.Accept(r)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if err := srv.Upgrade(w, r, func(c *ws.Conn) ws.Session { return proto.Open(c, chans) }); err != nil {
			http.Error(w, err.Error(), 503)
		}
	}))
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
		hs.Close()
		cancel()
		<-done
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// scriptedBroker: Subscribe of "b" fails, of "x..." blocks until release
// (holding the hub's interest lock of its shard), of anything else works.
type scriptedBroker struct {
	onB      func()
	arrived  atomic.Int32
	released chan struct{}
}

func (b *scriptedBroker) Publish(context.Context, *wspush.Message, wspush.PublishOptions) (wspush.StreamPosition, error) {
	return wspush.StreamPosition{}, nil
}
func (b *scriptedBroker) Unsubscribe(context.Context, string) error { return nil }
func (b *scriptedBroker) Subscribe(_ context.Context, ch string) error {
	switch {
	case ch == "b":
		if b.onB != nil {
			b.onB()
		}
		return errors.New("broker down")
	case strings.HasPrefix(ch, "x"):
		b.arrived.Add(1)
		<-b.released
		return errors.New("broker down")
	}
	return nil
}

type nopSub struct{ id uint64 }

func (s *nopSub) ID() uint64                        { return s.id }
func (s *nopSub) Encoder() hub.Encoder              { return &Encoder{} }
func (s *nopSub) Send(*wspush.Message, []byte) bool { return true }

// TestNoPushBefore1013: with ?channels= of which one fails, the connection
// gets no frame but the 1013 close. Open used to discard a joined
// channel's held pushes before it left the hub; when hub.Unsubscribe
// waited for the channel's interest lock (another subscription of that
// shard waiting on the broker, as when the broker is down), the channel's
// pushes went out before the close, without a welcome (10 runs of 10).
func TestNoPushBefore1013(t *testing.T) {
	b := &scriptedBroker{released: make(chan struct{})}
	h := hub.New(b)
	var wg sync.WaitGroup
	b.onB = func() {
		// Other connections subscribing meanwhile, stuck on the broker.
		for i := range 2000 {
			wg.Go(func() {
				_ = h.Subscribe(context.Background(), fmt.Sprint("x", i), &nopSub{uint64(1e6 + i)})
			})
		}
		deadline := time.Now().Add(10 * time.Second)
		for b.arrived.Load() < 63 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(b.released) }) }
	defer func() { release(); wg.Wait() }()

	proto := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{}, h)
	url := serveWS(t, proto)
	var chans []string
	for i := range 10 {
		chans = append(chans, fmt.Sprint("a", i))
	}
	c, _, err := websocket.DefaultDialer.Dial(url+"?channels="+strings.Join(chans, ",")+",b", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first := make(chan string, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, p, err := c.ReadMessage()
		if err != nil {
			first <- "error: " + err.Error()
			return
		}
		first <- string(p)
	}()
	var got string
	deadline := time.Now().Add(15 * time.Second)
poll:
	for time.Now().Before(deadline) {
		for _, ch := range chans {
			h.HandleMessage(&wspush.Message{Channel: ch, Data: []byte(`"live"`)})
		}
		select {
		case got = <-first:
			break poll
		case <-time.After(time.Millisecond):
		}
	}
	release()
	if got == "" {
		got = <-first
	}
	var f struct{ Type string }
	if json.Unmarshal([]byte(got), &f) == nil && f.Type != "" {
		t.Fatalf("first frame of a connection whose ?channels= failed: %s; want only a close with 1013", got)
	}
	if !strings.Contains(got, "1013") {
		t.Fatalf("first read: %s; want a close with 1013", got)
	}
}

// historyAcrossEpochs is a History whose read of a channel returns the
// old epoch's position while a message of the new epoch (the history
// expired, a publish started over at 1) reaches the hub.
type historyAcrossEpochs struct{ h *hub.Hub }

func (x *historyAcrossEpochs) History(_ context.Context, ch string, _ wspush.HistoryQuery) (wspush.HistoryResult, error) {
	x.h.HandleMessage(&wspush.Message{Channel: ch, Offset: 1, Epoch: "E2", Data: []byte(`"first of E2"`)})
	return wspush.HistoryResult{Position: wspush.StreamPosition{Offset: 50, Epoch: "E1"}}, nil
}

// TestReleaseKeepsANewEpoch: a push held during a subscribe, of an epoch
// newer than the position the subscribe read (the history expired and
// started over meanwhile), is delivered, whatever its offset. release
// used to compare offsets only: E2:1 was lost, E2:2 came through.
func TestReleaseKeepsANewEpoch(t *testing.T) {
	b := &scriptedBroker{released: make(chan struct{})}
	h := hub.New(b)
	hist := &historyAcrossEpochs{h}
	proto := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{
		Namespaces: wspush.NewNamespaces(wspush.ChannelOptions{HistorySize: 100, HistoryTTL: time.Minute}, nil),
		History:    hist,
	}, h)
	url := serveWS(t, proto)
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	read := func() map[string]any {
		t.Helper()
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(p, &m)
		return m
	}
	read() // welcome
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"subscribe","channel":"c"}`)); err != nil {
		t.Fatal(err)
	}
	r := read()
	if r["type"] != "reply" || r["epoch"] != "E1" {
		t.Fatalf("reply %v", r)
	}
	h.HandleMessage(&wspush.Message{Channel: "c", Offset: 2, Epoch: "E2", Data: []byte(`"second of E2"`)})
	m := read()
	if m["epoch"] != "E2" || m["offset"] != float64(1) {
		t.Fatalf("after the reply at E1:50, first push %v; want E2:1 (a new epoch's first message, held during the subscribe)", m)
	}
}
