package brokertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wspush/wspush"
)

// runHistory checks a broker's wspush.History, if it has one.
func runHistory(t *testing.T, s Suite) {
	if _, ok := s.New(t)(t).(wspush.History); !ok {
		t.Skip("the broker keeps no history")
	}
	t.Run("OffsetsAndEpoch", func(t *testing.T) { testOffsets(t, s) })
	t.Run("Query", func(t *testing.T) { testHistoryQuery(t, s) })
	t.Run("SizeLimit", func(t *testing.T) { testHistorySize(t, s) })
	t.Run("TTL", func(t *testing.T) { testHistoryTTL(t, s) })
	t.Run("DeliveryInOffsetOrder", func(t *testing.T) { testOffsetOrder(t, s) })
	t.Run("NoHistoryNoOffset", func(t *testing.T) { testNoHistory(t, s) })
	t.Run("NoGapAfterSubscribe", func(t *testing.T) { testNoGapAfterSubscribe(t, s) })
}

// testNoGapAfterSubscribe checks the guarantee recovery relies on: once
// Subscribe returned and a History read gave a position, every later
// offset reaches the node, however close behind the publication came.
func testNoGapAfterSubscribe(t *testing.T, s Suite) {
	newNode := s.New(t)
	b, pub := newNode(t), wspush.Broker(nil)
	var mu sync.Mutex
	got := map[uint64]bool{}
	run(t, s, b, wspush.HandlerFunc(func(m *wspush.Message) {
		if m.Channel == "gap" {
			mu.Lock()
			got[m.Offset] = true
			mu.Unlock()
		}
	}))
	if s.SingleNode {
		pub = b
	} else {
		pub = newNode(t) // publish from another node, where there is one
		start(t, s, pub)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var mu2 sync.Mutex
	var published uint64
	wg.Go(func() {
		for ctx.Err() == nil {
			pos, err := pub.Publish(ctx, &wspush.Message{Channel: "gap", Data: data(1)}, keep(10))
			if err != nil {
				return
			}
			mu2.Lock()
			published = pos.Offset
			mu2.Unlock()
		}
	})
	deadline := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if err := b.Subscribe(ctx, "gap"); err != nil {
			t.Fatal(err)
		}
		res, err := b.(wspush.History).History(ctx, "gap", wspush.HistoryQuery{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		next := res.Position.Offset + 1
		wait := time.Now().Add(s.Timeout)
		for {
			mu.Lock()
			ok := got[next]
			mu.Unlock()
			mu2.Lock()
			sent := published >= next
			mu2.Unlock()
			if ok {
				break
			}
			if sent && time.Now().After(wait) {
				t.Fatalf("iteration %d: subscribed at offset %d; offset %d was published but never delivered", i, next-1, next)
			}
			time.Sleep(time.Millisecond)
		}
		if err := b.Unsubscribe(ctx, "gap"); err != nil {
			t.Fatal(err)
		}
	}
}

func keep(n int) wspush.PublishOptions {
	return wspush.PublishOptions{HistorySize: n, HistoryTTL: time.Minute}
}

func publishKept(t *testing.T, b wspush.Broker, ch string, v any, opts wspush.PublishOptions) wspush.StreamPosition {
	t.Helper()
	m := &wspush.Message{Channel: ch, Data: data(v)}
	pos, err := b.Publish(context.Background(), m, opts)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if pos != m.Position() {
		t.Fatalf("Publish returned %+v but set the message's position to %+v", pos, m.Position())
	}
	return pos
}

func history(t *testing.T, b wspush.Broker, ch string, q wspush.HistoryQuery) wspush.HistoryResult {
	t.Helper()
	res, err := b.(wspush.History).History(context.Background(), ch, q)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	return res
}

func offsets(msgs []*wspush.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Offset
	}
	return out
}

func testOffsets(t *testing.T, s Suite) {
	b := s.New(t)(t)
	r := start(t, s, b)
	subscribe(t, b, "h")
	var epoch string
	for i := 1; i <= 5; i++ {
		pos := publishKept(t, b, "h", i, keep(10))
		if pos.Offset != uint64(i) || pos.Epoch == "" {
			t.Fatalf("publish %d got position %+v, want offset %d and an epoch", i, pos, i)
		}
		if epoch == "" {
			epoch = pos.Epoch
		} else if pos.Epoch != epoch {
			t.Fatalf("epoch changed from %q to %q", epoch, pos.Epoch)
		}
	}
	msgs := r.waitFor(t, s.Timeout, "5 messages", func(m []wspush.Message) bool { return len(m) >= 5 })
	for i, m := range msgs {
		if m.Offset != uint64(i+1) || m.Epoch != epoch {
			t.Fatalf("delivered message %d has position %d/%q, want %d/%q", i, m.Offset, m.Epoch, i+1, epoch)
		}
	}
	// Another channel counts on its own.
	if pos := publishKept(t, b, "other", "x", keep(10)); pos.Offset != 1 {
		t.Fatalf("first message of another channel has offset %d", pos.Offset)
	}
}

func testHistoryQuery(t *testing.T, s Suite) {
	b := s.New(t)(t)
	start(t, s, b)
	var epoch string
	for i := 1; i <= 10; i++ {
		epoch = publishKept(t, b, "q", i, keep(100)).Epoch
	}
	want := func(res wspush.HistoryResult, offs ...uint64) {
		t.Helper()
		if got := offsets(res.Messages); fmt.Sprint(got) != fmt.Sprint(offs) {
			t.Fatalf("offsets %v, want %v", got, offs)
		}
		for _, m := range res.Messages {
			if string(m.Data) != fmt.Sprint(m.Offset) || m.Channel != "q" {
				t.Fatalf("message %d has data %s, channel %q", m.Offset, m.Data, m.Channel)
			}
		}
		if res.Position != (wspush.StreamPosition{Offset: 10, Epoch: epoch}) {
			t.Fatalf("position %+v, want 10/%s", res.Position, epoch)
		}
	}
	want(history(t, b, "q", wspush.HistoryQuery{}), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	want(history(t, b, "q", wspush.HistoryQuery{Limit: 3}), 8, 9, 10) // the newest, oldest first
	res := history(t, b, "q", wspush.HistoryQuery{Since: &wspush.StreamPosition{Offset: 6, Epoch: epoch}})
	want(res, 7, 8, 9, 10)
	if !res.Complete {
		t.Fatal("since 6 in the current epoch: not complete")
	}
	want(history(t, b, "q", wspush.HistoryQuery{Since: &wspush.StreamPosition{Offset: 6, Epoch: epoch}, Limit: 2}), 7, 8)
	res = history(t, b, "q", wspush.HistoryQuery{Since: &wspush.StreamPosition{Offset: 10, Epoch: epoch}})
	want(res)
	if !res.Complete {
		t.Fatal("since the top: not complete")
	}
	// Another epoch: nothing can be recovered.
	res = history(t, b, "q", wspush.HistoryQuery{Since: &wspush.StreamPosition{Offset: 6, Epoch: epoch + "x"}})
	if res.Complete || len(res.Messages) != 0 {
		t.Fatalf("since another epoch: complete %v, %d messages", res.Complete, len(res.Messages))
	}
	// An offset from the future of this epoch is not complete either.
	if res = history(t, b, "q", wspush.HistoryQuery{Since: &wspush.StreamPosition{Offset: 11, Epoch: epoch}}); res.Complete {
		t.Fatal("since an offset never given: complete")
	}
	// From the beginning, whatever the epoch.
	res = history(t, b, "q", wspush.HistoryQuery{Since: &wspush.StreamPosition{}})
	want(res, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	if !res.Complete {
		t.Fatal("since {0, \"\"} with nothing dropped: not complete")
	}
	// A channel without history has an empty position.
	if res = history(t, b, "none", wspush.HistoryQuery{}); len(res.Messages) != 0 || res.Position != (wspush.StreamPosition{}) {
		t.Fatalf("channel without history: %+v", res)
	}
}

func testHistorySize(t *testing.T, s Suite) {
	b := s.New(t)(t)
	start(t, s, b)
	var epoch string
	for i := 1; i <= 10; i++ {
		epoch = publishKept(t, b, "sz", i, keep(4)).Epoch
	}
	if got := offsets(history(t, b, "sz", wspush.HistoryQuery{}).Messages); fmt.Sprint(got) != "[7 8 9 10]" {
		t.Fatalf("kept %v, want the last 4", got)
	}
	// Since 5: 6 was dropped, so the window no longer covers it.
	res := history(t, b, "sz", wspush.HistoryQuery{Since: &wspush.StreamPosition{Offset: 5, Epoch: epoch}})
	if res.Complete {
		t.Fatal("since 5 with 6 dropped: complete")
	}
	// Since 6: 7 onwards are all kept.
	if res = history(t, b, "sz", wspush.HistoryQuery{Since: &wspush.StreamPosition{Offset: 6, Epoch: epoch}}); !res.Complete || len(res.Messages) != 4 {
		t.Fatalf("since 6: complete %v, %d messages; want complete, 4", res.Complete, len(res.Messages))
	}
	if res = history(t, b, "sz", wspush.HistoryQuery{Since: &wspush.StreamPosition{}}); res.Complete {
		t.Fatal("since the beginning with messages dropped: complete")
	}
}

func testHistoryTTL(t *testing.T, s Suite) {
	b := s.New(t)(t)
	start(t, s, b)
	ttl := 300 * time.Millisecond
	opts := wspush.PublishOptions{HistorySize: 10, HistoryTTL: ttl}
	first := publishKept(t, b, "ttl", 1, opts)
	publishKept(t, b, "ttl", 2, opts)
	// The messages expire; the position stays while the history lives.
	deadline := time.Now().Add(s.Timeout)
	for len(history(t, b, "ttl", wspush.HistoryQuery{}).Messages) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("messages did not expire")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Once the whole history has expired, a new publication starts a new
	// epoch: the old offsets mean nothing any more.
	pos := publishKept(t, b, "ttl", 3, opts)
	if pos.Epoch == first.Epoch && pos.Offset != 3 {
		t.Fatalf("after expiry: position %+v; want offset 3 in the same epoch or a new epoch", pos)
	}
	res := history(t, b, "ttl", wspush.HistoryQuery{Since: &first})
	if res.Complete {
		t.Fatal("recovery across expired messages reported complete")
	}
}

func testOffsetOrder(t *testing.T, s Suite) {
	b := s.New(t)(t)
	r := start(t, s, b)
	subscribe(t, b, "ord")
	const workers, each = 4, 100
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := b.Publish(context.Background(), &wspush.Message{Channel: "ord", Data: data(i)}, keep(1000)); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	msgs := r.waitFor(t, s.Timeout, "every message", func(m []wspush.Message) bool { return len(m) >= workers*each })
	for i, m := range msgs {
		if m.Offset != uint64(i+1) {
			t.Fatalf("delivery %d has offset %d: concurrent publishers delivered out of offset order", i, m.Offset)
		}
	}
}

func testNoHistory(t *testing.T, s Suite) {
	b := s.New(t)(t)
	r := start(t, s, b)
	subscribe(t, b, "plain")
	pos, err := b.Publish(context.Background(), &wspush.Message{Channel: "plain", Data: data(1)}, wspush.PublishOptions{})
	if err != nil || pos != (wspush.StreamPosition{}) {
		t.Fatalf("publish without history: %+v, %v", pos, err)
	}
	msgs := r.waitFor(t, s.Timeout, "the message", func(m []wspush.Message) bool { return len(m) >= 1 })
	if msgs[0].Offset != 0 {
		t.Fatalf("a message without history got offset %d", msgs[0].Offset)
	}
	if res := history(t, b, "plain", wspush.HistoryQuery{}); len(res.Messages) != 0 {
		t.Fatal("a message published without history is in the history")
	}
}

// runPresence checks a broker's wspush.Presence, if it has one.
func runPresence(t *testing.T, s Suite) {
	b := s.New(t)(t)
	p, ok := b.(wspush.Presence)
	if !ok {
		t.Skip("the broker keeps no presence")
	}
	start(t, s, b)
	ctx := context.Background()
	add := func(ch, id, user string, ttl time.Duration) {
		t.Helper()
		if err := p.AddPresence(ctx, ch, wspush.ClientInfo{ClientID: id, UserID: user, Info: data(map[string]string{"name": id})}, ttl); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
	}
	add("room", "c1", "ann", 0)
	add("room", "c2", "ann", 0)
	add("room", "c3", "bob", 0)
	add("room", "c4", "", 0)
	add("other", "c9", "zed", 0)
	got, err := p.Presence(ctx, "room")
	if err != nil || len(got) != 4 || got["c3"].UserID != "bob" || string(got["c1"].Info) != `{"name":"c1"}` {
		t.Fatalf("Presence = %v, %v", got, err)
	}
	st, err := p.PresenceStats(ctx, "room")
	if err != nil || st != (wspush.PresenceStats{Clients: 4, Users: 2}) {
		t.Fatalf("PresenceStats = %+v, %v; want 4 clients, 2 users", st, err)
	}
	if err := p.RemovePresence(ctx, "room", "c2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Presence(ctx, "room"); len(got) != 3 || got["c2"].ClientID != "" {
		t.Fatalf("after removing c2: %v", got)
	}
	if err := p.RemovePresence(ctx, "room", "never"); err != nil {
		t.Fatalf("removing an absent client: %v", err)
	}
	// An entry not refreshed within its TTL goes.
	add("brief", "c5", "", 200*time.Millisecond)
	add("brief", "c6", "", 0)
	deadline := time.Now().Add(s.Timeout)
	for {
		got, _ := p.Presence(ctx, "brief")
		if len(got) == 1 && got["c6"].ClientID == "c6" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the entry with a TTL did not expire: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, _ := p.Presence(ctx, "empty"); len(got) != 0 {
		t.Fatalf("presence of an empty channel: %v", got)
	}
}
