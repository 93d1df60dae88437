package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/protocol/native"
)

// nopBroker accepts every call and does nothing.
type nopBroker struct{}

func (nopBroker) Publish(context.Context, *wspush.Message, wspush.PublishOptions) (wspush.StreamPosition, error) {
	return wspush.StreamPosition{}, nil
}
func (nopBroker) Subscribe(context.Context, string) error   { return nil }
func (nopBroker) Unsubscribe(context.Context, string) error { return nil }

// ringSub is a benchmark Subscriber whose Send does what a connection's
// does at least: take its lock and queue the frame, here in a small
// preallocated ring that never grows.
type ringSub struct {
	id  uint64
	enc hub.Encoder

	mu   sync.Mutex
	ring [8][]byte
	n    uint64
}

func (s *ringSub) ID() uint64           { return s.id }
func (s *ringSub) Encoder() hub.Encoder { return s.enc }

func (s *ringSub) Send(_ *wspush.Message, frame []byte) bool {
	s.mu.Lock()
	s.ring[s.n%uint64(len(s.ring))] = frame
	s.n++
	s.mu.Unlock()
	return true
}

// fixedEncoder returns one preallocated frame: it isolates the hub's own
// cost from encoding.
type fixedEncoder struct{ frame []byte }

func (e *fixedEncoder) Encode(*wspush.Message) []byte { return e.frame }

// payload64 is a 64-byte JSON value, a typical small push.
var payload64 = json.RawMessage(`{"user":"ann","text":"` + strings.Repeat("x", 64-len(`{"user":"ann","text":""}`)) + `"}`)

// benchFanout delivers one message per iteration to n subscribers of one
// channel and reports ns per delivery besides ns per message.
func benchFanout(b *testing.B, n int, enc hub.Encoder, m *wspush.Message) {
	h := hub.New(nopBroker{})
	subs := make([]*ringSub, n)
	for i := range subs {
		subs[i] = &ringSub{id: uint64(i + 1), enc: enc}
		h.Connect(subs[i])
		if !m.Broadcast {
			mustSubscribe(b, h, m.Channel, subs[i])
		}
	}
	b.ReportAllocs()
	iters := 0
	for b.Loop() {
		h.HandleMessage(m)
		iters++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(iters*n), "ns/delivery")
	if d := h.Stats().Delivered; d < uint64(iters*n) {
		b.Fatalf("delivered %d frames, want %d", d, iters*n)
	}
}

// BenchmarkFanout is the hub's own cost of delivering a message to the
// subscribers of one channel, encoding excluded.
func BenchmarkFanout(b *testing.B) {
	m := &wspush.Message{Channel: "chat", Data: payload64}
	enc := &fixedEncoder{frame: (&native.Encoder{}).Encode(m)}
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			benchFanout(b, n, enc, m)
		})
	}
}

// BenchmarkFanoutNative delivers to 10k subscribers of one channel with
// the native protocol's real encoder, so that frame encoding is included,
// and the same as a broadcast to 10k connections.
func BenchmarkFanoutNative(b *testing.B) {
	enc := &native.Encoder{}
	b.Run("channel/subscribers=10000", func(b *testing.B) {
		benchFanout(b, 10000, enc, &wspush.Message{Channel: "chat", Data: payload64})
	})
	b.Run("broadcast/connections=10000", func(b *testing.B) {
		benchFanout(b, 10000, enc, &wspush.Message{Broadcast: true, Data: payload64})
	})
}

// BenchmarkSubscribeUnsubscribe is the cost of one subscriber joining and
// leaving a channel that has others (no broker call).
func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	h := hub.New(nopBroker{})
	enc := &fixedEncoder{frame: []byte("x")}
	for i := range 1000 {
		mustSubscribe(b, h, "chat", &ringSub{id: uint64(i + 1), enc: enc})
	}
	s := &ringSub{id: 1 << 40, enc: enc}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Subscribe(ctx, "chat", s)
		_ = h.Unsubscribe(ctx, "chat", s)
	}
}

// BenchmarkHandleMessageParallel delivers to many channels of 10
// subscribers each from all CPUs at once: the sharded locks at work.
func BenchmarkHandleMessageParallel(b *testing.B) {
	h := hub.New(nopBroker{})
	enc := &fixedEncoder{frame: []byte("x")}
	const channels, perChannel = 1024, 10
	msgs := make([]*wspush.Message, channels)
	id := uint64(0)
	for c := range msgs {
		msgs[c] = &wspush.Message{Channel: fmt.Sprint("room", c), Data: payload64}
		for range perChannel {
			id++
			mustSubscribe(b, h, msgs[c].Channel, &ringSub{id: id, enc: enc})
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			h.HandleMessage(msgs[i%channels])
			i += 7
		}
	})
}
