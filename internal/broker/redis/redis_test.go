package redis_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/redis"
	"github.com/wspush/wspush/internal/brokertest"
	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/proxytest"
	"github.com/wspush/wspush/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var logger = slog.New(slog.DiscardHandler)

func newBroker(t testing.TB, url string) *redis.Broker {
	t.Helper()
	b, err := redis.New(logger, redis.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Suite{
		New: func(t *testing.T) brokertest.NewNode {
			srv := redistest.Start(t, redistest.Options{})
			return func(t *testing.T) wspush.Broker { return newBroker(t, srv.URL) }
		},
	})
}

// collector records what a node receives.
type collector struct {
	mu   sync.Mutex
	msgs []*wspush.Message
}

func (c *collector) HandleMessage(m *wspush.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
}

func (c *collector) offsets() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]uint64, len(c.msgs))
	for i, m := range c.msgs {
		out[i] = m.Offset
	}
	return out
}

// run runs b until the test ends and waits until it is ready.
func run(t *testing.T, b *redis.Broker, h wspush.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, 10*time.Second, "the broker to be ready", func() bool { return b.Ready() == nil })
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var keep = wspush.PublishOptions{HistorySize: 1000, HistoryTTL: time.Minute}

// checkSequence checks that offsets are exactly 1..n.
func checkSequence(t *testing.T, got []uint64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("received %d messages, want %d: %v", len(got), n, got)
	}
	for i, off := range got {
		if off != uint64(i+1) {
			t.Fatalf("message %d has offset %d: lost, duplicated or reordered (%v)", i, off, got)
		}
	}
}

// proxiedPair runs two nodes on one redis-server: a through a proxy the
// test cuts, its messages collected in got, and b directly.
func proxiedPair(t *testing.T) (srv *redistest.Server, proxy *proxytest.Proxy, a, b *redis.Broker, got *collector) {
	t.Helper()
	srv = redistest.Start(t, redistest.Options{})
	proxy = proxytest.Start(t, srv.Addr)
	a, b = newBroker(t, "redis://"+proxy.Addr()), newBroker(t, srv.URL)
	got = &collector{}
	run(t, a, got)
	run(t, b, &collector{})
	return srv, proxy, a, b, got
}

// TestCatchUpAfterPubSubLoss cuts a node's connections to Redis while
// another node publishes: the node reconnects and delivers what it missed
// from the history, once, in order, and nothing from before it subscribed.
// Before, the node could do so only for a channel that had delivered a
// message to it already; it had no position for one that had not.
func TestCatchUpAfterPubSubLoss(t *testing.T) {
	for _, c := range []struct {
		name           string
		before, gotten int // published before the subscribe; received before the cut
	}{
		{"after a message", 0, 1},
		{"before the first message", 0, 0},
		{"before the first message, with history", 3, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, proxy, a, b, got := proxiedPair(t)
			ctx := context.Background()
			n := 0
			publish := func() {
				t.Helper()
				n++
				if _, err := b.Publish(ctx, &wspush.Message{Channel: "g", Data: []byte(fmt.Sprint(n))}, keep); err != nil {
					t.Fatal(err)
				}
			}
			for range c.before {
				publish()
			}
			if err := a.Subscribe(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			for range c.gotten {
				publish()
			}
			waitFor(t, 5*time.Second, "the messages before the cut", func() bool { return len(got.offsets()) == c.gotten })

			proxy.Down()
			waitFor(t, 10*time.Second, "node a to notice the lost connection", func() bool { return a.Ready() != nil })
			for range 3 {
				publish()
			}
			proxy.Up(srv.Addr)
			waitFor(t, 15*time.Second, "node a to catch up", func() bool { return len(got.offsets()) >= c.gotten+3 && a.Ready() == nil })
			publish()
			waitFor(t, 5*time.Second, "the next message", func() bool { return len(got.offsets()) >= c.gotten+4 })
			var want []uint64
			for i := c.before + 1; i <= n; i++ {
				want = append(want, uint64(i))
			}
			if g := got.offsets(); fmt.Sprint(g) != fmt.Sprint(want) {
				t.Fatalf("node a received offsets %v, want %v", g, want)
			}
		})
	}
}

// TestRedisRestartLosesNothingAcknowledged restarts a durable Redis while a
// node publishes: every publish that was acknowledged reaches the other
// node, once, in order.
func TestRedisRestartLosesNothingAcknowledged(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	sub, pub := newBroker(t, srv.URL), newBroker(t, srv.URL)
	got := &collector{}
	run(t, sub, got)
	run(t, pub, &collector{})
	ctx := context.Background()
	if err := sub.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	var acked []uint64
	var failed int
	publishFor := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
			pos, err := pub.Publish(ctx, &wspush.Message{Channel: "r", Data: []byte(`"x"`)}, keep)
			if err != nil {
				failed++
				time.Sleep(5 * time.Millisecond) // a publisher's retry pause, not synchronization
				continue
			}
			acked = append(acked, pos.Offset)
		}
	}
	publishFor(300 * time.Millisecond)
	before := len(acked)
	srv.Restart()
	publishFor(time.Second)
	if len(acked) == before {
		// The restarted Redis lost the Lua script: the broker must load it again.
		t.Fatal("no publish was acknowledged after the restart")
	}
	waitFor(t, 15*time.Second, "every acknowledged message", func() bool { return len(got.offsets()) >= len(acked) })
	checkSequence(t, acked, len(acked))
	checkSequence(t, got.offsets(), len(acked))
	t.Logf("%d publishes acknowledged, %d refused while Redis was down; all delivered once, in order", len(acked), failed)
}

// TestUnavailableWhileRedisIsDown checks the node's behaviour without
// Redis: not ready, publishes refused with ErrUnavailable, back after.
func TestUnavailableWhileRedisIsDown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	b := newBroker(t, srv.URL)
	run(t, b, &collector{})
	srv.Stop()
	waitFor(t, 10*time.Second, "not ready", func() bool { return b.Ready() != nil })
	_, err := b.Publish(context.Background(), &wspush.Message{Channel: "x", Data: []byte("1")}, wspush.PublishOptions{})
	if !errorsIsUnavailable(err) {
		t.Fatalf("publish with Redis down: %v, want ErrUnavailable", err)
	}
	srv.Restart()
	waitFor(t, 15*time.Second, "ready again", func() bool { return b.Ready() == nil })
	if _, err := b.Publish(context.Background(), &wspush.Message{Channel: "x", Data: []byte("1")}, wspush.PublishOptions{}); err != nil {
		t.Fatalf("publish after Redis came back: %v", err)
	}
}

// TestCrashedNodePresenceExpires: a node refreshes its presence entries;
// once it is gone (no RemovePresence, as in a crash), they expire within
// the presence TTL, while a live node's entries stay.
func TestCrashedNodePresenceExpires(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	const ttl = 400 * time.Millisecond
	mk := func() *redis.Broker {
		b, err := redis.New(logger, redis.Config{URL: srv.URL, PresenceTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	live, doomed := mk(), mk()
	run(t, live, &collector{})
	ctx, crash := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- doomed.Run(ctx, &collector{}) }()
	waitFor(t, 10*time.Second, "the doomed node to be ready", func() bool { return doomed.Ready() == nil })

	bg := context.Background()
	if err := live.AddPresence(bg, "room", wspush.ClientInfo{ClientID: "stays"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := doomed.AddPresence(bg, "room", wspush.ClientInfo{ClientID: "goes"}, 0); err != nil {
		t.Fatal(err)
	}
	crash()
	<-done
	start := time.Now()
	waitFor(t, 5*time.Second, "the crashed node's client to leave presence", func() bool {
		p, err := live.Presence(bg, "room")
		return err == nil && len(p) == 1 && p["stays"].ClientID == "stays"
	})
	if d := time.Since(start); d > 2*ttl+time.Second {
		t.Fatalf("took %v, longer than the TTL allows", d)
	}
	// Several TTLs later, the live node's entry is still there: refreshed.
	waitFor(t, 5*time.Second, "three TTLs", func() bool { return time.Since(start) > 3*ttl })
	if p, _ := live.Presence(bg, "room"); p["stays"].ClientID != "stays" {
		t.Fatal("the live node's entry expired: it was not refreshed")
	}
}

// The broker delivers from one goroutine and tells the hub, which then
// queues small fan-outs instead of writing them on that goroutine.
var _ hub.SerialBroker = (*redis.Broker)(nil)

func TestSerialDelivery(t *testing.T) {
	if !(&redis.Broker{}).SerialDelivery() {
		t.Fatal("the Redis broker does not report serial delivery")
	}
}

// TestNoPresenceGhostAfterARacingRefresh: a client that leaves while the
// node refreshes its presence entries is not written back by the refresh.
// It used to be, when the refresh's write reached Redis after the
// removal: a ghost in the channel's presence for a whole TTL (a minute).
func TestNoPresenceGhostAfterARacingRefresh(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := newBroker(t, srv.URL)
	run(t, a, &collector{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			a.RefreshPresenceNow(context.Background())
		}
	})
	for g := range 4 {
		wg.Go(func() {
			bg := context.Background()
			for i := 0; ctx.Err() == nil; i++ {
				c := wspush.ClientInfo{ClientID: fmt.Sprintf("c%d-%d", g, i)}
				if err := a.AddPresence(bg, "p", c, 0); err != nil {
					t.Error(err)
					return
				}
				if err := a.RemovePresence(bg, "p", c.ClientID); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := a.Presence(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		ids := []string{}
		for id := range got {
			ids = append(ids, id)
		}
		t.Fatalf("%d clients in presence after every one left: %v", len(got), ids)
	}
}

// TestPresenceKeysOutliveTheShortestTTL: two nodes with different
// presence TTLs write to one channel's presence; the channel's keys live
// as long as the longer one. They used to take the TTL of the last write,
// so a node with a short TTL could expire the entries of one with a long
// TTL, all at once.
func TestPresenceKeysOutliveTheShortestTTL(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	long, err := redis.New(logger, redis.Config{URL: srv.URL, PresenceTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	short, err := redis.New(logger, redis.Config{URL: srv.URL, PresenceTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	run(t, long, &collector{})
	run(t, short, &collector{})
	ctx := context.Background()
	if err := long.AddPresence(ctx, "p", wspush.ClientInfo{ClientID: "l"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := short.AddPresence(ctx, "p", wspush.ClientInfo{ClientID: "s"}, 0); err != nil {
		t.Fatal(err)
	}
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	for _, key := range []string{"wspush:presence:z:{p}", "wspush:presence:h:{p}"} {
		ttl, err := admin.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < 30*time.Second {
			t.Errorf("%s expires in %v after the short-TTL node's write, want about a minute", key, ttl)
		}
	}
	got, err := long.Presence(ctx, "p")
	if err != nil || len(got) != 2 {
		t.Fatalf("presence %v %v, want both clients", got, err)
	}
}

// TestSilentConnectionReplaced: a PUB/SUB connection that stays open but
// carries nothing more (its peer gone without a FIN or a reset) is given
// up after ReplaceAfter; the node dials again, subscribes to its channels
// and is ready. It used to keep the connection until the kernel gave up,
// some 15 minutes, not ready all along.
func TestSilentConnectionReplaced(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := proxytest.Start(t, srv.Addr)
	a, err := redis.New(logger, redis.Config{URL: "redis://" + proxy.Addr(), ReplaceAfter: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, srv.URL)
	got := &collector{}
	run(t, a, got)
	run(t, b, &collector{})
	ctx := context.Background()
	if err := a.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	proxy.Freeze()
	if _, err := b.Publish(ctx, &wspush.Message{Channel: "g", Data: []byte("1")}, keep); err != nil {
		t.Fatal(err)
	}
	// Only a new connection can bring it: the frozen one carries nothing.
	waitFor(t, 20*time.Second, "the message, on a new connection", func() bool { return len(got.offsets()) == 1 })
	waitFor(t, 5*time.Second, "node a ready", func() bool { return a.Ready() == nil })
	if _, err := b.Publish(ctx, &wspush.Message{Channel: "g", Data: []byte("2")}, keep); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a live message on the new connection", func() bool { return len(got.offsets()) == 2 })
	checkSequence(t, got.offsets(), 2)
}

// replacing runs node a, through a proxy, with a ReplaceAfter of 1 ms,
// and node b; the proxy then freezes a's connections and holds new ones,
// so that the replacement of a's PUB/SUB connection hangs in its dial
// until the test releases it.
func replacing(t *testing.T, channels ...string) (a, b *redis.Broker, proxy *proxytest.Proxy, got *collector) {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	proxy = proxytest.Start(t, srv.Addr)
	a, err := redis.New(logger, redis.Config{URL: "redis://" + proxy.Addr(), ReplaceAfter: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b = newBroker(t, srv.URL)
	got = &collector{}
	run(t, a, got)
	run(t, b, &collector{})
	for _, ch := range channels {
		if err := a.Subscribe(context.Background(), ch); err != nil {
			t.Fatal(err)
		}
	}
	proxy.Hold()
	proxy.Freeze()
	waitFor(t, 20*time.Second, "the replacement to dial", func() bool { return proxy.Held() > 0 })
	return a, b, proxy, got
}

// TestSubscribeDuringReplacement: a Subscribe made while the node dials
// its replacement PUB/SUB connection is confirmed on the new one. It used
// to go to the old, dead one, and wait until its context ended, the node
// ready again meanwhile.
func TestSubscribeDuringReplacement(t *testing.T) {
	a, b, proxy, got := replacing(t, "g")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Subscribe(ctx, "h") }()
	waitFor(t, 5*time.Second, "the Subscribe to take its PubSub", func() bool { return a.Waiting("h") })
	proxy.Release()
	if err := <-done; err != nil {
		t.Fatalf("Subscribe(h) during the replacement: %v", err)
	}
	if _, err := b.Publish(ctx, &wspush.Message{Channel: "h", Data: []byte(`1`)}, wspush.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a message of h", func() bool { return len(got.offsets()) == 1 })
}

// TestUnsubscribeDuringReplacement: an Unsubscribe made while the node
// dials its replacement PUB/SUB connection holds: the new connection,
// which copied the channel set before, does not keep the channel. It used
// to: the node went on receiving a channel it had left.
func TestUnsubscribeDuringReplacement(t *testing.T) {
	a, b, proxy, got := replacing(t, "u", "v")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Unsubscribe(ctx, "u") }()
	waitFor(t, 5*time.Second, "u to leave the channel set", func() bool { return !a.Subscribed("u") })
	proxy.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "node a ready on its new connection", func() bool { return a.Ready() == nil })
	for _, ch := range []string{"u", "v"} { // v after u: when v is in, u would be
		if _, err := b.Publish(ctx, &wspush.Message{Channel: ch, Data: []byte(`1`)}, wspush.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the message of v", func() bool { return len(got.offsets()) >= 1 })
	got.mu.Lock()
	defer got.mu.Unlock()
	for _, m := range got.msgs {
		if m.Channel == "u" {
			t.Fatal("node a received a message of u, which it unsubscribed from during the replacement")
		}
	}
}

// TestResyncSkipsChannelsWithoutHistory: after a reconnect, a node reads
// the history of none of its channels that keep none: one pipelined look
// finds them. Each used to cost a history read (a MULTI/EXEC), one after
// another, before the node was ready again.
func TestResyncSkipsChannelsWithoutHistory(t *testing.T) {
	const n = 300
	srv := redistest.Start(t, redistest.Options{})
	proxy := proxytest.Start(t, srv.Addr)
	a := newBroker(t, "redis://"+proxy.Addr())
	run(t, a, &collector{})
	ctx := context.Background()
	for i := range n {
		if err := a.Subscribe(ctx, fmt.Sprint("nohist", i)); err != nil {
			t.Fatal(err)
		}
	}
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	proxy.Down()
	waitFor(t, 10*time.Second, "node a to notice", func() bool { return a.Ready() != nil })
	if err := admin.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	proxy.Up(srv.Addr)
	waitFor(t, 30*time.Second, "node a ready", func() bool { return a.Ready() == nil })
	info, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`cmdstat_exec:calls=(\d+)`).FindStringSubmatch(info); m != nil {
		t.Fatalf("a reconnect with %d channels without history made %s history reads", n, m[1])
	}
}

// TestCatchUpAcrossAnExpiredEpoch: a quiet room whose history expired
// (its epoch is gone) loses the node's connection, and what is published
// meanwhile starts a new epoch: the node reads all of it, from its first
// offset. It used to ask for what followed the dead epoch's position, get
// "not complete", and read nothing.
func TestCatchUpAcrossAnExpiredEpoch(t *testing.T) {
	srv, proxy, a, b, got := proxiedPair(t)
	ctx := context.Background()
	short := wspush.PublishOptions{HistorySize: 1000, HistoryTTL: 300 * time.Millisecond}
	if _, err := b.Publish(ctx, &wspush.Message{Channel: "q", Data: []byte(`0`)}, short); err != nil {
		t.Fatal(err)
	}
	if err := a.Subscribe(ctx, "q"); err != nil { // floor: offset 1 of the first epoch
		t.Fatal(err)
	}
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer admin.Close()
	waitFor(t, 10*time.Second, "the quiet room's history to expire", func() bool {
		n, err := admin.Exists(ctx, "wspush:meta:{q}").Result()
		return err == nil && n == 0
	})
	proxy.Down()
	waitFor(t, 10*time.Second, "node a to notice", func() bool { return a.Ready() != nil })
	for i := 1; i <= 3; i++ {
		if _, err := b.Publish(ctx, &wspush.Message{Channel: "q", Data: []byte(fmt.Sprint(i))}, keep); err != nil {
			t.Fatal(err)
		}
	}
	proxy.Up(srv.Addr)
	waitFor(t, 15*time.Second, "node a ready", func() bool { return a.Ready() == nil })
	if _, err := b.Publish(ctx, &wspush.Message{Channel: "q", Data: []byte(`4`)}, keep); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the live message, offset 4", func() bool {
		o := got.offsets()
		return len(o) > 0 && o[len(o)-1] == 4
	})
	checkSequence(t, got.offsets(), 4)
}
