package nats_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/nats"
	"github.com/wspush/wspush/internal/brokertest"
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
