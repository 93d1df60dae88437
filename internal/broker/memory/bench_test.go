package memory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/memory"
	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/protocol/native"
)

// The cost of history and presence on the fan-out path: the memory broker,
// the hub and the native protocol's encoder, with subscribers whose Send
// does what a connection's does at least (take a lock, queue the frame).
// Compare the sub-benchmarks of one run:
//
//	go test -run '^$' -bench 'Fanout|SubscribeUnsubscribe' -benchmem -count 5 ./internal/broker/memory

// room is the subscribers of the benchmarks' channel.
const room = 10000

// payload64 is a 64-byte JSON value, a typical small push.
var payload64 = json.RawMessage(`{"user":"ann","text":"` + strings.Repeat("x", 64-len(`{"user":"ann","text":""}`)) + `"}`)

// ringSub is a hub.Subscriber that queues frames in a small ring, after
// the check the native session makes on every push (is a subscription
// being set up, whose pushes wait for its reply?).
type ringSub struct {
	id  uint64
	enc hub.Encoder

	held atomic.Int32 // never set: the native session's fast path
	mu   sync.Mutex
	ring [8][]byte
	n    uint64
}

func (s *ringSub) ID() uint64           { return s.id }
func (s *ringSub) Encoder() hub.Encoder { return s.enc }

func (s *ringSub) Send(m *wspush.Message, frame []byte) bool {
	if s.held.Load() > 0 && !m.Broadcast {
		panic("unreachable")
	}
	s.mu.Lock()
	s.ring[s.n%uint64(len(s.ring))] = frame
	s.n++
	s.mu.Unlock()
	return true
}

// node is a running memory broker with its hub, and n subscribers of
// channel "chat" (in its presence too, with presence).
func node(b *testing.B, n int, presence bool) (*hub.Hub, *memory.Broker) {
	b.Helper()
	br := memory.New()
	h := hub.New(br)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx, h) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	for br.Ready() != nil {
		time.Sleep(time.Millisecond)
	}
	enc := &native.Encoder{}
	for i := range n {
		s := &ringSub{id: uint64(i + 1), enc: enc}
		h.Connect(s)
		if err := h.Subscribe(ctx, "chat", s); err != nil {
			b.Fatal(err)
		}
		if presence {
			if err := br.AddPresence(ctx, "chat", wspush.ClientInfo{ClientID: fmt.Sprintf("client-%06d", i)}, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	return h, br
}

// BenchmarkFanout publishes one message per iteration, through the broker,
// to the 10,000 subscribers of a channel, without history and with a
// history of 100 messages (each publication is then also given an offset
// and kept). Presence costs nothing here: it is touched on subscribe and
// unsubscribe only, and the broker is the same with it on.
func BenchmarkFanout(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts wspush.PublishOptions
	}{
		{"history=off", wspush.PublishOptions{}},
		{"history=100", wspush.PublishOptions{HistorySize: 100, HistoryTTL: 10 * time.Minute}},
	} {
		b.Run(fmt.Sprintf("%s/subscribers=%d", bc.name, room), func(b *testing.B) {
			h, _ := node(b, room, false)
			ctx := context.Background()
			before := h.Stats().Delivered
			b.ReportAllocs()
			iters := 0
			for b.Loop() {
				if _, err := h.Publish(ctx, &wspush.Message{Channel: "chat", Data: payload64}, bc.opts); err != nil {
					b.Fatal(err)
				}
				iters++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(iters*room), "ns/delivery")
			if d := h.Stats().Delivered - before; d != uint64(iters*room) {
				b.Fatalf("delivered %d frames, want %d", d, iters*room)
			}
		})
	}
}

// BenchmarkSubscribeUnsubscribe is one client joining and leaving a channel
// of 10,000 subscribers, doing what the native protocol's session does:
// the hub subscription; with presence, the presence entry; with history,
// the read of the channel's position for the subscribe reply; with
// join/leave, a join and a leave message to every subscriber.
func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	for _, bc := range []struct {
		name                         string
		presence, history, joinLeave bool
	}{
		{"plain", false, false, false},
		{"presence=on", true, false, false},
		{"history=100", false, true, false},
		{"presence=on,join_leave=on", true, false, true},
	} {
		b.Run(fmt.Sprintf("%s/subscribers=%d", bc.name, room), func(b *testing.B) {
			h, br := node(b, room, bc.presence)
			ctx := context.Background()
			if bc.history {
				if _, err := h.Publish(ctx, &wspush.Message{Channel: "chat", Data: payload64}, wspush.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}); err != nil {
					b.Fatal(err)
				}
			}
			s := &ringSub{id: room + 1, enc: &native.Encoder{}}
			info := wspush.ClientInfo{ClientID: "newcomer-client"}
			b.ReportAllocs()
			for b.Loop() {
				if err := h.Subscribe(ctx, "chat", s); err != nil {
					b.Fatal(err)
				}
				if bc.presence {
					_ = br.AddPresence(ctx, "chat", info, 0)
				}
				if bc.history {
					if _, err := br.History(ctx, "chat", wspush.HistoryQuery{Limit: 1}); err != nil {
						b.Fatal(err)
					}
				}
				if bc.joinLeave {
					_, _ = h.Publish(ctx, &wspush.Message{Kind: wspush.KindJoin, Channel: "chat", Client: &info}, wspush.PublishOptions{})
				}
				_ = h.Unsubscribe(ctx, "chat", s)
				if bc.presence {
					_ = br.RemovePresence(ctx, "chat", info.ClientID)
				}
				if bc.joinLeave {
					_, _ = h.Publish(ctx, &wspush.Message{Kind: wspush.KindLeave, Channel: "chat", Client: &info}, wspush.PublishOptions{})
				}
			}
		})
	}
}
