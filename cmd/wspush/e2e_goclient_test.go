package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wspush/wspush/client"
	"github.com/wspush/wspush/internal/proxytest"
)

// End-to-end tests of the Go client's Client: reconnects, resubscription
// and recovery against the real server, through a proxy the tests cut
// (proxytest).

// pushReader reads a Client's pushes with a deadline.
type pushReader struct {
	t  *testing.T
	cl *client.Client
}

func (r pushReader) next() client.Push {
	r.t.Helper()
	select {
	case p, ok := <-r.cl.Messages():
		if !ok {
			r.t.Fatalf("Messages closed: %v", r.cl.Err())
		}
		return p
	case <-time.After(10 * time.Second):
		r.t.Fatal("no push within 10s")
	}
	return client.Push{}
}

// proxiedClient is a Client of the server at target through a proxy the
// test cuts, retrying within tens of milliseconds, subscribed to channels;
// connects counts its connections.
type proxiedClient struct {
	*client.Client
	proxy    *proxytest.Proxy
	connects atomic.Int32
	r        pushReader
}

// newProxiedClient starts one; minDelay 0 means 20 ms. The Client is
// closed when the test ends.
func newProxiedClient(t *testing.T, target string, minDelay time.Duration, channels ...string) *proxiedClient {
	t.Helper()
	if minDelay == 0 {
		minDelay = 20 * time.Millisecond
	}
	pc := &proxiedClient{proxy: proxytest.Start(t, target)}
	pc.Client = client.NewClient("ws://"+pc.proxy.Addr()+"/ws", &client.ClientOptions{
		MinDelay: minDelay, MaxDelay: 10 * minDelay,
		OnConnect: func(string) { pc.connects.Add(1) }})
	t.Cleanup(func() { pc.Close() })
	pc.r = pushReader{t, pc.Client}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ch := range channels {
		if err := pc.Subscribe(ctx, ch, nil); err != nil {
			t.Fatalf("subscribe %s: %v", ch, err)
		}
	}
	return pc
}

// TestGoClientRecoversAcrossReconnects: after a lost connection the Client
// subscribes again and replays what a channel with history published
// meanwhile, in order, without a gap or a duplicate; a channel without
// history gets a "reset" push where its messages may be missing.
func TestGoClientRecoversAcrossReconnects(t *testing.T) {
	s := startServer(t, "--config", writeConfig(t, "namespaces:\n  - name: chat\n    history_size: 100\n"))
	pc := newProxiedClient(t, s.Addr, 0, "chat:r", "plain")
	cl, p, r, connects := pc.Client, pc.proxy, pc.r, &pc.connects
	var epoch string
	for i := 1; i <= 3; i++ {
		epoch = publishAt(t, s, "chat:r", strconv.Itoa(i)).Epoch
		m := r.next()
		if m.Type != "message" || m.Channel != "chat:r" || m.Offset != uint64(i) || m.Epoch != epoch || string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("push %d: %+v", i, m)
		}
	}

	p.Down()
	eventually(t, 10*time.Second, "the Client to notice the cut", func() bool { return cl.ClientID() == "" })
	for i := 4; i <= 6; i++ {
		publishAt(t, s, "chat:r", strconv.Itoa(i))
	}
	publishJSON(t, s, "plain", `"lost"`)
	p.Up(s.Addr)

	// chat:r: 4..6 recovered, then 7, published after the reconnect.
	// plain: a reset, then what is published after it.
	var chat []string
	plainReset, plainAfter, published7 := false, false, false
	for len(chat) < 4 || !plainAfter {
		if !published7 && connects.Load() == 2 {
			publishAt(t, s, "chat:r", "7")
			published7 = true
		}
		m := r.next()
		switch {
		case m.Channel == "chat:r" && m.Type == "message":
			chat = append(chat, fmt.Sprintf("%d:%s@%s", m.Offset, m.Data, m.Epoch))
		case m.Channel == "plain" && m.Type == "reset" && !plainReset:
			if m.Since != nil || m.Offset != 0 {
				t.Errorf("reset of a channel without history: %+v, want no positions", m)
			}
			plainReset = true
			publishJSON(t, s, "plain", `"after"`)
		case m.Channel == "plain" && m.Type == "message" && plainReset && string(m.Data) == `"after"`:
			plainAfter = true
		default:
			t.Fatalf("unexpected push %+v (chat:r so far %v)", m, chat)
		}
	}
	want := fmt.Sprintf("[4:4@%[1]s 5:5@%[1]s 6:6@%[1]s 7:7@%[1]s]", epoch)
	if fmt.Sprint(chat) != want {
		t.Errorf("chat:r after the reconnect: %v, want %v", chat, want)
	}
	if pos, ok := cl.Position("chat:r"); !ok || pos != (client.Position{Offset: 7, Epoch: epoch}) {
		t.Errorf("Position(chat:r) = %v %v, want 7 in %s", pos, ok, epoch)
	}
	if n := connects.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestGoClientResetsAndDropsAfterServerChange: when the server behind the
// URL restarts (here: another one, as after a restart with the memory
// broker), history cannot be recovered and a "reset" push carries the old
// and the new position; a channel the new server refuses is dropped with
// an "unsubscribed" push, and the Client goes on with the others.
func TestGoClientResetsAndDropsAfterServerChange(t *testing.T) {
	s1 := startServer(t, "--config", writeConfig(t, `namespaces:
  - name: chat
    history_size: 10
  - name: gone
    history_size: 10
`))
	pc := newProxiedClient(t, s1.Addr, 0, "chat:r", "gone:r")
	cl, p, r := pc.Client, pc.proxy, pc.r
	old := publishAt(t, s1, "chat:r", `"one"`)
	if m := r.next(); m.Offset != 1 {
		t.Fatalf("first push %+v", m)
	}

	s2 := startServer(t, "--config", writeConfig(t, "namespaces:\n  - name: chat\n    history_size: 10\n"))
	p.Down()
	p.Up(s2.Addr)
	var reset, dropped *client.Push
	for reset == nil || dropped == nil {
		m := r.next()
		switch {
		case m.Type == "reset" && m.Channel == "chat:r":
			reset = &m
		case m.Type == "unsubscribed" && m.Channel == "gone:r":
			dropped = &m
		default:
			t.Fatalf("unexpected push %+v", m)
		}
	}
	if reset.Since == nil || *reset.Since != (client.Position{Offset: old.Offset, Epoch: old.Epoch}) || reset.Offset != 0 || reset.Epoch != "" {
		t.Errorf("reset %+v since %v, want since %v and the new server's empty position", reset, reset.Since, old)
	}
	if dropped.Err == nil || dropped.Err.Code != "not_found" {
		t.Errorf("unsubscribed %+v, want the server's not_found", dropped)
	}
	if _, ok := cl.Position("gone:r"); ok {
		t.Error("the dropped channel still has a position")
	}
	now := publishAt(t, s2, "chat:r", `"two"`)
	if m := r.next(); m.Channel != "chat:r" || m.Offset != 1 || m.Epoch != now.Epoch || m.Epoch == old.Epoch {
		t.Errorf("push after the reset %+v, want offset 1 of the new epoch %s", m, now.Epoch)
	}
}

// TestGoClientSubscribesPastTheRateLimit: more subscriptions than the
// server's command burst, at first and again after a reconnect; the
// refusals (rate_limited) are tried again until every channel is back.
func TestGoClientSubscribesPastTheRateLimit(t *testing.T) {
	s := startServer(t, "--client-rate-burst", "5", "--client-rate-limit", "100")
	// Retries slow enough that the bucket refills between them: refused
	// commands count against it too, and past twice the burst the server
	// closes with 4008 (with 20 ms it did, now and then, on a busy machine).
	pc := newProxiedClient(t, s.Addr, 60*time.Millisecond)
	cl, p, r, connects := pc.Client, pc.proxy, pc.r, &pc.connects
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 8 // over the burst of 5, under twice it (the server closes with 4008 past that)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- cl.Subscribe(ctx, fmt.Sprintf("rl%d", i), nil) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	p.Down()
	eventually(t, 10*time.Second, "the Client to notice the cut", func() bool { return cl.ClientID() == "" })
	p.Up(s.Addr)
	resets := map[string]bool{}
	for len(resets) < n {
		m := r.next()
		if m.Type != "reset" {
			t.Fatalf("unexpected push %+v", m)
		}
		resets[m.Channel] = true
	}
	for i := range n {
		publishJSON(t, s, fmt.Sprintf("rl%d", i), strconv.Itoa(i))
	}
	got := map[string]bool{}
	for len(got) < n {
		m := r.next()
		if m.Type != "message" {
			t.Fatalf("unexpected push %+v", m)
		}
		got[m.Channel] = true
	}
	if c := connects.Load(); c != 2 {
		t.Errorf("%d connections, want 2: the rate limit closed one", c)
	}
}

// TestGoConnHistoryAndPresence: the Go client's Conn speaks the history
// and presence ops, reads join pushes and positions, and recovers with
// SubscribeSince.
func TestGoConnHistoryAndPresence(t *testing.T) {
	s := startServer(t, "--config", historyConfig(t, 100, "10m"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, s.WS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rep, err := c.SubscribeSince(ctx, "chat:x", nil)
	if err != nil || rep.Position == nil || *rep.Position != (client.Position{}) || rep.Recovered != nil {
		t.Fatalf("subscribe: %+v %v, want the empty channel's position and no recovered", rep, err)
	}
	next := func() client.Push {
		t.Helper()
		select {
		case p := <-c.Messages():
			return p
		case <-time.After(10 * time.Second):
			t.Fatal("no push within 10s")
		}
		return client.Push{}
	}
	if j := next(); j.Type != "join" || j.Client == nil || j.Client.ClientID != c.ClientID() {
		t.Fatalf("first push %+v, want our own join", j)
	}
	var epoch string
	for i := 1; i <= 3; i++ {
		epoch = publishAt(t, s, "chat:x", strconv.Itoa(i)).Epoch
		if m := next(); m.Offset != uint64(i) || m.Epoch != epoch {
			t.Fatalf("push %d: %+v", i, m)
		}
	}
	h, err := c.History(ctx, "chat:x", nil, 2)
	if err != nil || h.Position != (client.Position{Offset: 3, Epoch: epoch}) || h.Complete != nil ||
		len(h.Messages) != 2 || h.Messages[0].Offset != 2 || string(h.Messages[1].Data) != "3" {
		t.Fatalf("history, limit 2: %+v %v", h, err)
	}
	h, err = c.History(ctx, "chat:x", &client.Position{Offset: 1, Epoch: epoch}, 0)
	if err != nil || h.Complete == nil || !*h.Complete || len(h.Messages) != 2 || h.Messages[0].Offset != 2 {
		t.Fatalf("history since 1: %+v %v", h, err)
	}
	if _, err := c.History(ctx, "nohist", nil, 0); err == nil {
		t.Error("history of a channel not subscribed: no error")
	}
	who, err := c.Presence(ctx, "chat:x")
	if err != nil || len(who) != 1 || who[0].ClientID != c.ClientID() {
		t.Fatalf("presence: %+v %v", who, err)
	}
	st, err := c.PresenceStats(ctx, "chat:x")
	if err != nil || st.NumClients != 1 {
		t.Fatalf("presence stats: %+v %v", st, err)
	}

	c2, err := client.Dial(ctx, s.WS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	rep, err = c2.SubscribeSince(ctx, "chat:x", &client.Position{Offset: 1, Epoch: epoch})
	if err != nil || rep.Recovered == nil || !*rep.Recovered || rep.Position.Offset != 3 {
		t.Fatalf("subscribe since 1: %+v %v, want recovered up to 3", rep, err)
	}
	for _, want := range []uint64{2, 3} {
		select {
		case m := <-c2.Messages():
			if m.Type != "message" || m.Offset != want {
				t.Fatalf("recovered push %+v, want offset %d", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no recovered push within 10s")
		}
	}
	var rerr *client.ReplyError
	if _, err := c2.SubscribeSince(ctx, "bad name!", nil); !errors.As(err, &rerr) || rerr.Code != "bad_request" {
		t.Errorf("subscribe to a bad name: %v, want bad_request", err)
	}
}
