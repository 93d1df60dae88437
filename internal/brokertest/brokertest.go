// Package brokertest is the conformance suite every wspush.Broker passes:
// the memory broker now, the Redis and NATS brokers as they come. A broker's
// tests call Run with a function that makes nodes sharing one backend.
package brokertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wspush/wspush"
)

// NewNode returns a new broker node. Nodes made by one NewNode share a
// backend: a message published on one reaches the others. A single-node
// broker returns the same backend's only node, and says so in Suite.
type NewNode func(t *testing.T) wspush.Broker

// Suite describes the broker under test.
type Suite struct {
	// New makes a node. Every node made in one subtest shares a backend.
	New func(t *testing.T) NewNode
	// SingleNode is set for brokers that cannot span nodes.
	SingleNode bool
	// Timeout bounds each wait for a delivery; zero means 5 s.
	Timeout time.Duration
}

// Run runs the conformance suite.
func Run(t *testing.T, s Suite) {
	if s.Timeout == 0 {
		s.Timeout = 5 * time.Second
	}
	t.Run("DeliversToSubscribedNode", func(t *testing.T) { testDelivers(t, s) })
	t.Run("OrderPerChannel", func(t *testing.T) { testOrder(t, s) })
	t.Run("NoDeliveryWithoutInterest", func(t *testing.T) { testNoInterest(t, s) })
	t.Run("Broadcast", func(t *testing.T) { testBroadcast(t, s) })
	t.Run("ConcurrentPublishers", func(t *testing.T) { testConcurrent(t, s) })
	t.Run("ReadyWhileRunning", func(t *testing.T) { testReady(t, s) })
	if !s.SingleNode {
		t.Run("AcrossNodes", func(t *testing.T) { testAcrossNodes(t, s) })
	}
	t.Run("History", func(t *testing.T) { runHistory(t, s) })
	t.Run("Presence", func(t *testing.T) { runPresence(t, s) })
}

// recorder is a Handler that keeps what it is given.
type recorder struct {
	mu   sync.Mutex
	msgs []wspush.Message
	cond chan struct{} // signalled on every message
}

func newRecorder() *recorder { return &recorder{cond: make(chan struct{}, 1)} }

func (r *recorder) HandleMessage(m *wspush.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, wspush.Message{Kind: m.Kind, Channel: m.Channel, Data: bytes.Clone(m.Data), Broadcast: m.Broadcast, Offset: m.Offset, Epoch: m.Epoch, Client: m.Client})
	r.mu.Unlock()
	select {
	case r.cond <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []wspush.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wspush.Message(nil), r.msgs...)
}

// waitFor polls until cond holds for the recorded messages, or fails.
func (r *recorder) waitFor(t *testing.T, d time.Duration, what string, cond func([]wspush.Message) bool) []wspush.Message {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if msgs := r.snapshot(); cond(msgs) {
			return msgs
		}
		select {
		case <-r.cond:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; have %d messages", what, len(r.snapshot()))
		}
	}
}

// start runs b with a recorder until the test ends and waits until ready.
func start(t *testing.T, s Suite, b wspush.Broker) *recorder {
	t.Helper()
	r := newRecorder()
	run(t, s, b, r)
	return r
}

// run runs b with h until the test ends and waits until ready.
func run(t *testing.T, s Suite, b wspush.Broker, r wspush.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, r) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(s.Timeout):
			t.Errorf("Run did not return within %v of cancel", s.Timeout)
		}
	})
	deadline := time.Now().Add(s.Timeout)
	for b.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("broker not ready after %v: %v", s.Timeout, b.Ready())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func subscribe(t *testing.T, b wspush.Broker, ch string) {
	t.Helper()
	if err := b.Subscribe(context.Background(), ch); err != nil {
		t.Fatalf("Subscribe(%q): %v", ch, err)
	}
}

func publish(t *testing.T, b wspush.Broker, m *wspush.Message) {
	t.Helper()
	if _, err := b.Publish(context.Background(), m, wspush.PublishOptions{}); err != nil {
		t.Fatalf("Publish(%q): %v", m.Channel, err)
	}
}

func data(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func testDelivers(t *testing.T, s Suite) {
	b := s.New(t)(t)
	r := start(t, s, b)
	subscribe(t, b, "news")
	publish(t, b, &wspush.Message{Channel: "news", Data: data(map[string]any{"n": 1, "s": "héllo"})})
	msgs := r.waitFor(t, s.Timeout, "one message", func(m []wspush.Message) bool { return len(m) >= 1 })
	if got := msgs[0]; got.Channel != "news" || string(got.Data) != `{"n":1,"s":"héllo"}` || got.Broadcast {
		t.Fatalf("delivered %+v (data %s), want channel news and the published data", got, got.Data)
	}
}

func testOrder(t *testing.T, s Suite) {
	b := s.New(t)(t)
	r := start(t, s, b)
	subscribe(t, b, "seq")
	const n = 1000
	for i := range n {
		publish(t, b, &wspush.Message{Channel: "seq", Data: data(i)})
	}
	msgs := r.waitFor(t, s.Timeout, fmt.Sprintf("%d messages", n), func(m []wspush.Message) bool { return len(m) >= n })
	for i, m := range msgs {
		if string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d is %s: order lost", i, m.Data)
		}
	}
}

func testNoInterest(t *testing.T, s Suite) {
	b := s.New(t)(t)
	r := start(t, s, b)
	subscribe(t, b, "gone")
	subscribe(t, b, "marker")
	if err := b.Unsubscribe(context.Background(), "gone"); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	publish(t, b, &wspush.Message{Channel: "gone", Data: data("x")})
	publish(t, b, &wspush.Message{Channel: "never-subscribed", Data: data("y")})
	publish(t, b, &wspush.Message{Channel: "marker", Data: data("end")})
	msgs := r.waitFor(t, s.Timeout, "the marker", func(m []wspush.Message) bool { return len(m) >= 1 })
	for _, m := range msgs {
		if m.Channel != "marker" {
			t.Fatalf("delivered a message of %q, a channel without interest", m.Channel)
		}
	}
}

func testBroadcast(t *testing.T, s Suite) {
	b := s.New(t)(t)
	r := start(t, s, b)
	publish(t, b, &wspush.Message{Broadcast: true, Data: data("all")})
	msgs := r.waitFor(t, s.Timeout, "the broadcast", func(m []wspush.Message) bool { return len(m) >= 1 })
	if !msgs[0].Broadcast || string(msgs[0].Data) != `"all"` {
		t.Fatalf("delivered %+v, want the broadcast", msgs[0])
	}
}

func testConcurrent(t *testing.T, s Suite) {
	b := s.New(t)(t)
	r := start(t, s, b)
	const workers, each = 8, 200
	for w := range workers {
		subscribe(t, b, fmt.Sprint("c", w))
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := b.Publish(context.Background(), &wspush.Message{Channel: fmt.Sprint("c", w), Data: data(i)}, wspush.PublishOptions{}); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	msgs := r.waitFor(t, s.Timeout, "every message", func(m []wspush.Message) bool { return len(m) >= workers*each })
	next := map[string]int{}
	for _, m := range msgs {
		if string(m.Data) != fmt.Sprint(next[m.Channel]) {
			t.Fatalf("channel %s: got %s, want %d (lost, duplicated or reordered)", m.Channel, m.Data, next[m.Channel])
		}
		next[m.Channel]++
	}
	if len(msgs) != workers*each {
		t.Fatalf("delivered %d messages, want %d", len(msgs), workers*each)
	}
}

func testReady(t *testing.T, s Suite) {
	b := s.New(t)(t)
	start(t, s, b)
	if err := b.Ready(); err != nil {
		t.Fatalf("Ready() = %v while running", err)
	}
}

func testAcrossNodes(t *testing.T, s Suite) {
	newNode := s.New(t)
	a, b := newNode(t), newNode(t)
	start(t, s, a)
	rb := start(t, s, b)
	subscribe(t, b, "x")
	publish(t, a, &wspush.Message{Channel: "x", Data: data("from a")})
	msgs := rb.waitFor(t, s.Timeout, "the message from node a", func(m []wspush.Message) bool { return len(m) >= 1 })
	if string(msgs[0].Data) != `"from a"` {
		t.Fatalf("node b got %s", msgs[0].Data)
	}
}
