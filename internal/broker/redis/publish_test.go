package redis_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/redistest"
)

// TestScriptLossResendsOnlyScriptCalls: when Redis has lost the publish
// script (a restart, a failover; here SCRIPT FLUSH), the batch's script
// calls are sent again, and its plain publishes, which went out, are not:
// they used to be delivered twice.
func TestScriptLossResendsOnlyScriptCalls(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	sub, pub := newBroker(t, srv.URL), newBroker(t, srv.URL)
	var mu sync.Mutex
	seen := map[string]int{}
	run(t, sub, wspush.HandlerFunc(func(m *wspush.Message) {
		if m.Channel == "n" {
			mu.Lock()
			seen[string(m.Data)]++
			mu.Unlock()
		}
	}))
	run(t, pub, &collector{})
	ctx := context.Background()
	if err := sub.Subscribe(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	total := 0
	for round := range 20 {
		if err := admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 16 { // history and plain publishes, in the same batches
			data := fmt.Sprintf("%d", round*100+i)
			total++
			wg.Go(func() {
				<-start
				if _, err := pub.Publish(ctx, &wspush.Message{Channel: "h", Data: []byte("1")}, keep); err != nil {
					t.Error(err)
				}
			})
			wg.Go(func() {
				<-start
				if _, err := pub.Publish(ctx, &wspush.Message{Channel: "n", Data: []byte(data)}, wspush.PublishOptions{}); err != nil {
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
	}
	// Every publish has returned, so any second copy is on its way before
	// this last message, which one publisher's order puts after them.
	if _, err := pub.Publish(ctx, &wspush.Message{Channel: "n", Data: []byte(`"end"`)}, wspush.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the last message", func() bool { mu.Lock(); defer mu.Unlock(); return seen[`"end"`] > 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != total+1 {
		t.Errorf("%d distinct plain messages delivered, want %d", len(seen)-1, total)
	}
	for d, n := range seen {
		if n > 1 {
			t.Errorf("plain message %s delivered %d times", d, n)
		}
	}
}

// TestPublishAnsweredAtShutdown: publishes racing the end of Run are all
// answered at once; one queued after the publisher's last look used to
// wait for its context.
func TestPublishAnsweredAtShutdown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	for round := range 10 {
		b := newBroker(t, srv.URL)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx, &collector{}) }()
		waitFor(t, 10*time.Second, "ready", func() bool { return b.Ready() == nil })
		var sent, stuck atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err := b.Publish(pctx, &wspush.Message{Channel: "c", Data: []byte("1")}, wspush.PublishOptions{})
					if err != nil && pctx.Err() != nil {
						stuck.Add(1)
					}
					pcancel()
					sent.Add(1)
				}
			})
		}
		waitFor(t, 10*time.Second, "publishes under way", func() bool { return sent.Load() > 50 })
		cancel()
		<-done
		close(stop)
		wg.Wait()
		if n := stuck.Load(); n > 0 {
			t.Fatalf("round %d: %d publishes waited for their context after Run stopped", round, n)
		}
	}
}

// TestResubscribeStartsAfresh: messages of a subscription still in flight
// when it ended leave no position behind, so a later subscription does
// not take its first message for a gap and deliver what was published
// while the node was not subscribed.
func TestResubscribeStartsAfresh(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := newBroker(t, srv.URL), newBroker(t, srv.URL)
	got := &collector{}
	hold, held := make(chan struct{}), make(chan struct{})
	var once sync.Once
	run(t, a, wspush.HandlerFunc(func(m *wspush.Message) {
		once.Do(func() { close(held); <-hold }) // a's Run waits on the first message
		got.HandleMessage(m)
	}))
	run(t, b, &collector{})
	ctx := context.Background()
	if err := a.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		for range n {
			if _, err := b.Publish(ctx, &wspush.Message{Channel: "r", Data: []byte("1")}, keep); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(5) // offsets 1-5: 2-5 in flight while a unsubscribes
	<-held
	if err := a.Unsubscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	close(hold)
	waitFor(t, 5*time.Second, "the messages in flight", func() bool { return len(got.offsets()) == 5 })
	publish(10) // offsets 6-15, while a is not subscribed
	if err := a.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	publish(1) // offset 16
	waitFor(t, 5*time.Second, "offset 16", func() bool {
		o := got.offsets()
		return o[len(o)-1] == 16
	})
	if after := got.offsets()[5:]; len(after) != 1 {
		t.Fatalf("after subscribing again, got offsets %v; want only [16]", after)
	}
}

// TestReadyAgainAfterRedisPauses: a Redis that stops answering without
// closing the connection (paused: SIGSTOP here; a long fork or a VM pause
// in life) makes the node not ready, and ready again once it answers: the
// same connection goes on, and no subscription confirmation comes to say
// so. The node used to stay not ready for good.
func TestReadyAgainAfterRedisPauses(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := newBroker(t, srv.URL)
	run(t, a, &collector{})
	ctx := context.Background()
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	info, err := admin.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for l := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "process_id:"); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if pid == 0 {
		t.Fatal("no process_id in INFO")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer resume()
	waitFor(t, 20*time.Second, "not ready while Redis is paused", func() bool { return a.Ready() != nil })
	resume()
	waitFor(t, 20*time.Second, "ready again once Redis answers", func() bool { return a.Ready() == nil })
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.Subscribe(sctx, "x"); err != nil {
		t.Fatalf("Subscribe after Redis resumed: %v", err)
	}
}

// TestHistoryNeverMixesEpochs reads the history of a channel whose history
// expires between publishes, so that nearly every publish starts a new
// epoch: every message a read returns must be the one published at its
// offset in its epoch. Read in two steps, meta then stream, a read that
// straddled a new epoch returned the new epoch's entries under the old
// one.
func TestHistoryNeverMixesEpochs(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := newBroker(t, srv.URL)
	run(t, a, &collector{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	brief := wspush.PublishOptions{HistorySize: 10, HistoryTTL: time.Millisecond}
	var mu sync.Mutex
	published := map[wspush.StreamPosition]string{}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			d := strconv.Itoa(i)
			pos, err := a.Publish(ctx, &wspush.Message{Channel: "e", Data: []byte(d)}, brief)
			if err != nil {
				return
			}
			mu.Lock()
			published[pos] = d
			mu.Unlock()
		}
	})
	reads, checked := 0, 0
	for ctx.Err() == nil {
		res, err := a.History(ctx, "e", wspush.HistoryQuery{})
		if err != nil {
			break
		}
		reads++
		mu.Lock()
		for _, m := range res.Messages {
			want, ok := published[m.Position()]
			if ok && want != string(m.Data) {
				mu.Unlock()
				t.Fatalf("read %d: offset %d of epoch %s holds %q, published as %q", reads, m.Offset, m.Epoch, m.Data, want)
			}
			if ok {
				checked++
			}
		}
		mu.Unlock()
	}
	cancel()
	wg.Wait()
	t.Logf("%d reads, %d messages checked", reads, checked)
	if checked == 0 {
		t.Fatal("no message checked")
	}
}
