package nats_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/nats"
	"github.com/wspush/wspush/internal/brokertest"
	"github.com/wspush/wspush/internal/proxytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startNATS runs an in-process nats-server on a free port until the test ends.
func startNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

func newBroker(t *testing.T, url string) *nats.Broker {
	t.Helper()
	b, err := nats.New(slog.New(slog.DiscardHandler), nats.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Suite{
		New: func(t *testing.T) brokertest.NewNode {
			s := startNATS(t)
			return func(t *testing.T) wspush.Broker { return newBroker(t, s.ClientURL()) }
		},
	})
}

// TestChannelNamesWithDots checks that channel names with dots map to
// distinct, valid subjects.
func TestChannelNamesWithDots(t *testing.T) {
	s := startNATS(t)
	b := newBroker(t, s.ClientURL())
	got := make(chan *wspush.Message, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, wspush.HandlerFunc(func(m *wspush.Message) { got <- m })) }()
	defer func() { cancel(); <-done }()
	for b.Ready() != nil {
		time.Sleep(5 * time.Millisecond)
	}
	for _, ch := range []string{".a", "a.", "a..b", "a.b"} {
		if err := b.Subscribe(ctx, ch); err != nil {
			t.Fatalf("Subscribe(%q): %v", ch, err)
		}
	}
	for _, ch := range []string{".a", "a.", "a..b", "a.b"} {
		if _, err := b.Publish(ctx, &wspush.Message{Channel: ch, Data: []byte(`1`)}, wspush.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m.Channel != ch {
				t.Fatalf("published to %q, delivered as %q", ch, m.Channel)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("nothing delivered for %q", ch)
		}
	}
}

func TestNotReadyWithoutServer(t *testing.T) {
	s := startNATS(t)
	url := s.ClientURL()
	b := newBroker(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, wspush.HandlerFunc(func(*wspush.Message) {})) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for b.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Shutdown()
	s.WaitForShutdown()
	for b.Ready() == nil {
		if time.Now().After(deadline) {
			t.Fatal("still ready without a server")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := b.Publish(ctx, &wspush.Message{Channel: "x", Data: []byte("1")}, wspush.PublishOptions{}); err == nil {
		t.Fatal("publish without a server succeeded")
	}
}

// TestRunWaitsForNATS: started before NATS is up, Run keeps trying instead
// of returning, becomes ready once the server starts, and its broadcast
// subscription, made before the first connection, delivers.
func TestRunWaitsForNATS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // free, for the server started below
	b := newBroker(t, fmt.Sprintf("nats://127.0.0.1:%d", port))
	got := make(chan *wspush.Message, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, wspush.HandlerFunc(func(m *wspush.Message) { got <- m })) }()
	defer func() { cancel(); <-done }()

	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	deadline := time.Now().Add(10 * time.Second)
	for b.Ready() != nil {
		select {
		case err := <-done:
			done <- err // for the deferred wait
			t.Fatalf("Run returned before NATS was up: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready after NATS started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		if _, err := b.Publish(ctx, &wspush.Message{Broadcast: true, Data: []byte(`1`)}, wspush.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if !m.Broadcast {
				t.Fatalf("delivered %+v, want the broadcast", m)
			}
			return
		case <-time.After(100 * time.Millisecond):
			// The subscription may reach the server just after Ready.
		}
		if time.Now().After(deadline) {
			t.Fatal("the broadcast was never delivered")
		}
	}
}

func runReady(t *testing.T, b *nats.Broker, h wspush.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, h) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for b.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("not ready")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestOrderAcrossChannels: the Broker contract, "messages published one
// after another from one goroutine reach each node in the same order",
// across channels and broadcasts. Each NATS subscription used to deliver
// from its own goroutine: 19,896 of 20,000 arrived out of order.
func TestOrderAcrossChannels(t *testing.T) {
	s := startNATS(t)
	b := newBroker(t, s.ClientURL())
	var mu sync.Mutex
	var got []string
	var n atomic.Int64
	runReady(t, b, wspush.HandlerFunc(func(m *wspush.Message) {
		mu.Lock()
		got = append(got, string(m.Data))
		mu.Unlock()
		n.Add(1)
	}))
	ctx := context.Background()
	for _, ch := range []string{"a", "b"} {
		if err := b.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	const total = 20000
	for i := range total {
		m := &wspush.Message{Channel: []string{"a", "b"}[i%2], Data: []byte(fmt.Sprint(i))}
		if i%1000 == 999 {
			m = &wspush.Message{Broadcast: true, Data: []byte(fmt.Sprint(i))}
		}
		if _, err := b.Publish(ctx, m, wspush.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for n.Load() < total {
		if time.Now().After(deadline) {
			t.Fatalf("got %d of %d", n.Load(), total)
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	inversions := 0
	first := -1
	for i, d := range got {
		if d != fmt.Sprint(i) {
			inversions++
			if first < 0 {
				first = i
			}
		}
	}
	if inversions > 0 {
		t.Fatalf("%d of %d messages arrived out of publish order (first at position %d: %s)", inversions, total, first, got[first])
	}
}

// TestNoGoroutinePerChannel: subscribed channels cost no goroutine each
// (an async NATS subscription runs its callback in one of its own).
func TestNoGoroutinePerChannel(t *testing.T) {
	s := startNATS(t)
	b := newBroker(t, s.ClientURL())
	runReady(t, b, wspush.HandlerFunc(func(*wspush.Message) {}))
	before := runtime.NumGoroutine()
	const n = 5000
	ctx := context.Background()
	for i := range n {
		if err := b.Subscribe(ctx, fmt.Sprint("user:", i)); err != nil {
			t.Fatal(err)
		}
	}
	grew := runtime.NumGoroutine() - before
	t.Cleanup(func() {
		for i := range n {
			_ = b.Unsubscribe(ctx, fmt.Sprint("user:", i))
		}
	})
	if grew >= n {
		t.Fatalf("%d subscribed channels added %d goroutines (one stack each)", n, grew)
	}
}

// TestOverMaxPayloadIsTooLarge: a message over the server's max_payload
// is refused as too large (413), not as unavailable (503, retry), which
// no retry could pass.
func TestOverMaxPayloadIsTooLarge(t *testing.T) {
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 1024})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	b := newBroker(t, srv.ClientURL())
	runReady(t, b, wspush.HandlerFunc(func(*wspush.Message) {}))
	_, err = b.Publish(context.Background(), &wspush.Message{Channel: "x", Data: []byte(`"` + strings.Repeat("x", 2000) + `"`)}, wspush.PublishOptions{})
	if err == nil {
		t.Fatal("published over max_payload")
	}
	if !errors.Is(err, wspush.ErrTooLarge) {
		t.Fatalf("Publish over max_payload = %v, want too large", err)
	}
}

// TestSlowDeliveryIsNotSilent: a delivery that falls behind past the NATS
// client's pending limits loses messages; the broker's log says so. It
// used to be silent (a line on stderr from the NATS client only).
func TestSlowDeliveryIsNotSilent(t *testing.T) {
	s := startNATS(t)
	var logs strings.Builder
	var logMu sync.Mutex
	b := newBrokerLog(t, s.ClientURL(), &lockedWriter{&logMu, &logs})
	release := make(chan struct{})
	var n atomic.Int64
	runReady(t, b, wspush.HandlerFunc(func(m *wspush.Message) {
		if n.Add(1) == 1 {
			<-release // the first delivery is slow (a GC pause, a big room)
		}
	}))
	ctx := context.Background()
	if err := b.Subscribe(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	data := []byte(`"` + strings.Repeat("x", 900<<10) + `"`)
	const total = 80 // 72 MB: past the 64 MB pending limit
	for range total {
		if _, err := b.Publish(ctx, &wspush.Message{Channel: "big", Data: data}, wspush.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A marker published after the flood: once it arrived, all that will
	// arrive has.
	marker := &wspush.Message{Channel: "big", Data: []byte(`"end"`)}
	deadline := time.Now().Add(20 * time.Second)
	for n.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing delivered")
		}
		time.Sleep(time.Millisecond)
	}
	// Wait until the server has sent everything (the client read it).
	for {
		vz, _ := s.Varz(nil)
		if vz.OutMsgs >= total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server sent %d", vz.OutMsgs)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	_, _ = b.Publish(ctx, marker, wspush.PublishOptions{})
	end := time.Now().Add(3 * time.Second) // the marker, not a sleep: stop early when all came
	for n.Load() < total+1 {
		if time.Now().After(end) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	logMu.Lock()
	l := logs.String()
	logMu.Unlock()
	if got := n.Load(); got < total+1 && !strings.Contains(l, "messages may be lost") {
		t.Fatalf("delivered %d of %d and the broker's log does not say: %q", got, total+1, l)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newBrokerLog(t *testing.T, url string, w *lockedWriter) *nats.Broker {
	t.Helper()
	b, err := nats.New(slog.New(slog.NewTextHandler(w, nil)), nats.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFrozenConnectionNoticed: a NATS connection that stays open but
// carries nothing (the server's host gone without a FIN, a NAT that
// forgot the connection) makes the node not ready within seconds. It used
// to stay ready, acknowledging publishes that went nowhere, for the NATS
// client's default ping time (2 min x 2).
func TestFrozenConnectionNoticed(t *testing.T) {
	s := startNATS(t)
	p := proxytest.Start(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	frozen := newBroker(t, "nats://"+p.Addr())
	runReady(t, frozen, wspush.HandlerFunc(func(*wspush.Message) {}))
	other := newBroker(t, s.ClientURL())
	var got atomic.Int64
	runReady(t, other, wspush.HandlerFunc(func(*wspush.Message) { got.Add(1) }))
	ctx := context.Background()
	if err := other.Subscribe(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	p.Freeze()
	deadline := time.Now().Add(15 * time.Second)
	acked := 0
	for time.Now().Before(deadline) {
		if frozen.Ready() != nil {
			return // noticed: fine
		}
		if _, err := frozen.Publish(ctx, &wspush.Message{Channel: "c", Data: []byte("1")}, wspush.PublishOptions{}); err == nil {
			acked++
		}
		time.Sleep(100 * time.Millisecond) // pacing the publishes, not synchronisation
	}
	t.Fatalf("15 s after the connection froze: Ready() = nil, %d publishes acknowledged, %d delivered", acked, got.Load())
}

// TestSubscribeHonoursItsContext: on a connection that carries nothing,
// Subscribe returns when its context ends. It used to wait 5 s whatever
// the deadline, with the hub holding a shard's interest lock.
func TestSubscribeHonoursItsContext(t *testing.T) {
	s := startNATS(t)
	p := proxytest.Start(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	b := newBroker(t, "nats://"+p.Addr())
	runReady(t, b, wspush.HandlerFunc(func(*wspush.Message) {}))
	p.Freeze()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.Subscribe(ctx, "c")
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Subscribe with a 100 ms deadline took %v (err %v)", took.Round(time.Millisecond), err)
	}
}

// TestSpecialChannelNames: channel names with every character NATS
// treats apart map to distinct subjects, and back.
func TestSpecialChannelNames(t *testing.T) {
	s := startNATS(t)
	b := newBroker(t, s.ClientURL())
	var mu sync.Mutex
	got := map[string][]string{}
	n := 0
	runReady(t, b, wspush.HandlerFunc(func(m *wspush.Message) {
		mu.Lock()
		got[m.Channel] = append(got[m.Channel], string(m.Data))
		n++
		mu.Unlock()
	}))
	chans := []string{"$", "$SYS", "#", "a$b", ",", ";", "=", "@", ":", "ns:$SYS.x", ".", "..", "a.$", "_INBOX", "a:b.c#d@e,f;g=h"}
	ctx := context.Background()
	for _, ch := range chans {
		if !wspush.ValidChannel(ch, 0) {
			t.Fatalf("%q invalid", ch)
		}
		if err := b.Subscribe(ctx, ch); err != nil {
			t.Fatalf("Subscribe(%q): %v", ch, err)
		}
	}
	for _, ch := range chans {
		if _, err := b.Publish(ctx, &wspush.Message{Channel: ch, Data: []byte(`"` + ch + `"`)}, wspush.PublishOptions{}); err != nil {
			t.Fatalf("Publish(%q): %v", ch, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		c := n
		mu.Unlock()
		if c >= len(chans) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ch := range chans {
		if len(got[ch]) != 1 || got[ch][0] != `"`+ch+`"` {
			t.Errorf("channel %q got %v", ch, got[ch])
		}
	}
}

// After a NATS restart, subscriptions made before it deliver again.
func TestRestartResubscribes(t *testing.T) {
	s := startNATS(t)
	port := s.Addr().(*net.TCPAddr).Port
	url := s.ClientURL()
	b := newBroker(t, url)
	got := make(chan *wspush.Message, 100)
	runReady(t, b, wspush.HandlerFunc(func(m *wspush.Message) { got <- m }))
	ctx := context.Background()
	if err := b.Subscribe(ctx, "r.1"); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	s.WaitForShutdown()
	deadline := time.Now().Add(10 * time.Second)
	for b.Ready() == nil {
		if time.Now().After(deadline) {
			t.Fatal("ready without server")
		}
		time.Sleep(time.Millisecond)
	}
	s2, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s2.Start()
	t.Cleanup(func() { s2.Shutdown(); s2.WaitForShutdown() })
	for b.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("not ready again")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := b.Publish(ctx, &wspush.Message{Channel: "r.1", Data: []byte("1")}, wspush.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Channel != "r.1" {
			t.Fatal(m.Channel)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not delivered after restart")
	}
}
