package memory_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/memory"
	"github.com/wspush/wspush/internal/brokertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Suite{
		New: func(*testing.T) brokertest.NewNode {
			return func(*testing.T) wspush.Broker { return memory.New() }
		},
		SingleNode: true,
	})
}

func TestPublishBeforeRunIsUnavailable(t *testing.T) {
	b := memory.New()
	_, err := b.Publish(context.Background(), &wspush.Message{Channel: "a", Data: []byte("1")}, wspush.PublishOptions{})
	if !errors.Is(err, wspush.ErrUnavailable) {
		t.Fatalf("Publish before Run = %v, want ErrUnavailable", err)
	}
	if b.Ready() == nil {
		t.Fatal("Ready() = nil before Run")
	}
}

// TestNoGapForANewSubscriber: a node that declares interest in a channel
// with history, then reads the channel's position (what a subscribe with
// recovery does), receives every message after that position, even when a
// publication was under way as it subscribed.
func TestNoGapForANewSubscriber(t *testing.T) {
	b := memory.New()
	var mu sync.Mutex
	got := map[uint64]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		_ = b.Run(ctx, wspush.HandlerFunc(func(m *wspush.Message) {
			mu.Lock()
			got[m.Offset] = true
			mu.Unlock()
		}))
	})
	for b.Ready() != nil {
		time.Sleep(time.Millisecond)
	}
	opts := wspush.PublishOptions{HistorySize: 10, HistoryTTL: time.Minute}
	var published atomic.Uint64
	wg.Go(func() {
		for ctx.Err() == nil {
			pos, err := b.Publish(ctx, &wspush.Message{Channel: "c", Data: []byte("1")}, opts)
			if err != nil {
				return
			}
			published.Store(pos.Offset)
		}
	})
	deadline := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if err := b.Subscribe(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		res, err := b.History(ctx, "c", wspush.HistoryQuery{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		next := res.Position.Offset + 1
		for published.Load() < next {
			runtime.Gosched()
		}
		mu.Lock()
		ok := got[next]
		mu.Unlock()
		if !ok {
			t.Fatalf("iteration %d: subscribed at offset %d, then offset %d was published but not delivered", i, next-1, next)
		}
		if err := b.Unsubscribe(ctx, "c"); err != nil {
			t.Fatal(err)
		}
	}
}
