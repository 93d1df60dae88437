package httpapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/memory"
	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/protocol/native"
	"github.com/wspush/wspush/internal/ws"
)

// countingSub is a subscriber that only counts what it is sent.
type countingSub struct {
	enc hub.Encoder
	n   int
}

func (s *countingSub) ID() uint64                        { return 1 }
func (s *countingSub) Encoder() hub.Encoder              { return s.enc }
func (s *countingSub) Send(*wspush.Message, []byte) bool { s.n++; return true }

// BenchmarkPublishHandler is one POST /api/publish through the real
// handler, hub, memory broker and native encoder, to one subscriber: the
// server's cost per API publish, HTTP parsing aside.
func BenchmarkPublishHandler(b *testing.B) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	broker := memory.New()
	h := hub.New(broker)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go broker.Run(ctx, h)
	for broker.Ready() != nil {
	}
	proto := native.New(logger, native.Config{}, h)
	sub := &countingSub{enc: proto.Encoder()}
	if err := h.Subscribe(ctx, "bench", sub); err != nil {
		b.Fatal(err)
	}
	srv := NewServer(logger, Config{APIKey: "k", Namespaces: wspush.NewNamespaces(wspush.ChannelOptions{}, nil)}, h, broker, ws.NewServer(logger, ws.Config{}), proto)
	body := []byte(`{"channel":"bench","data":{"ts":1764201600000000000,"seq":12345,"pad":"xxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	req := httptest.NewRequest("POST", "/api/publish", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer k")
	b.ReportAllocs()
	for b.Loop() {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	if sub.n == 0 {
		b.Fatal("nothing delivered")
	}
}
