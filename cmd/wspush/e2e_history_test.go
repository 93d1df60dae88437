package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// End-to-end tests of history, recovery on reconnect, presence and
// join/leave (issue 4), over real sockets.

// historyConfig writes a config file with a namespace "chat" that keeps
// history (size messages), presence and join/leave, and returns its path.
func historyConfig(t *testing.T, size int, ttl string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wspush.yaml")
	cfg := fmt.Sprintf(`namespaces:
  - name: chat
    history_size: %d
    history_ttl: %s
    presence: true
    join_leave: true
    client_publish: true
`, size, ttl)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// namespacesYAML configures a namespace for each case, besides the default
// namespace (no history, no presence, no join/leave, client publish).
const namespacesYAML = `namespaces:
  - name: chat      # the issue's example: everything on
    history_size: 100
    history_ttl: 10m
    presence: true
    join_leave: true
    client_publish: true
  - name: live      # recovery under load: a large window
    history_size: 10000
    client_publish: true
  - name: small     # a window of 3 messages
    history_size: 3
  - name: brief     # a window of 300ms
    history_size: 10
    history_ttl: 300ms
  - name: big       # more than the 1000 a history call returns
    history_size: 2000
  - name: pres      # presence without join/leave
    presence: true
  - name: quiet     # neither history nor presence
    client_publish: true
`

// nsServer starts a server with namespacesYAML and args.
func nsServer(t *testing.T, args ...string) *server {
	t.Helper()
	return startServer(t, append([]string{"--config", writeConfig(t, namespacesYAML)}, args...)...)
}

// subscribeReply subscribes c with the extra JSON fields (`,"since":{...}`)
// and returns the reply, which must be the next frame.
func subscribeReply(t *testing.T, c *wsConn, id int64, ch, extra string) frame {
	t.Helper()
	c.send(fmt.Sprintf(`{"id":%d,"op":"subscribe","channel":%q%s}`, id, ch, extra))
	f := c.next()
	if f.Type != "reply" || f.ID == nil || *f.ID != id || !f.OK {
		t.Fatalf("subscribe %s%s: first frame %s, want the ok reply", ch, extra, f.raw)
	}
	return f
}

// wantMessage checks a push of a channel with history: exactly
// {"type":"message","channel":ch,"offset":off,"epoch":epoch,"data":data}.
func wantMessage(t *testing.T, f frame, ch string, off uint64, epoch, data string) {
	t.Helper()
	want := fmt.Sprintf(`{"type":"message","channel":%q,"offset":%d,"epoch":%s,"data":%s}`, ch, off, jsonString(epoch), data)
	if f.raw != want {
		t.Fatalf("got %s\nwant %s", f.raw, want)
	}
}

func TestOffsetsAndEpoch(t *testing.T) {
	s := nsServer(t)
	a := dial(t, s.WS, nil)
	// A channel with history but no message yet: position 0, no epoch.
	r := subscribeReply(t, a, 1, "live:o", "")
	if want := `{"type":"reply","id":1,"ok":true,"offset":0,"epoch":""}`; r.raw != want {
		t.Fatalf("subscribe reply %s, want %s", r.raw, want)
	}
	var epoch string
	for i := 1; i <= 3; i++ {
		p := publishAt(t, s, "live:o", fmt.Sprint(i))
		if epoch == "" {
			epoch = p.Epoch
		}
		if p != (position{uint64(i), epoch}) {
			t.Fatalf("publish %d answered %+v, want offset %d in epoch %q", i, p, i, epoch)
		}
	}
	for i := 1; i <= 3; i++ {
		wantMessage(t, a.next(), "live:o", uint64(i), epoch, fmt.Sprint(i))
	}

	// A client's publish: the reply carries the position; reply and push
	// may come in either order.
	q := dial(t, s.WS, nil)
	if r := subscribeReply(t, q, 1, "quiet:o", ""); strings.Contains(r.raw, "offset") {
		t.Fatalf("subscribe reply of a channel without history: %s", r.raw)
	}
	c := dial(t, s.WS, nil)
	subscribeReply(t, c, 1, "chat:o", "")
	c.send(`{"id":2,"op":"publish","channel":"chat:o","data":"x"}`)
	var chatEpoch string
	for got := 0; got < 2; {
		f := c.next()
		switch f.Type {
		case "join":
		case "reply":
			if !f.OK || f.Offset != 1 || f.Epoch == "" || *f.ID != 2 {
				t.Fatalf("client publish reply %s, want offset 1 and an epoch", f.raw)
			}
			chatEpoch = f.Epoch
			got++
		case "message":
			if f.Offset != 1 || f.Epoch == "" || string(f.Data) != `"x"` {
				t.Fatalf("client publish push %s", f.raw)
			}
			got++
		default:
			t.Fatalf("unexpected frame %s", f.raw)
		}
	}

	// The raw publish answers with the position too.
	raw := post(t, "POST", s.URL+"/api/publish/live:o", "", "raw", nil)
	if want := fmt.Sprintf(`{"ok":true,"offset":4,"epoch":%s}`, jsonString(epoch)); raw.Status != 200 || strings.TrimSpace(raw.Body) != want {
		t.Fatalf("raw publish: %d %s, want %s", raw.Status, raw.Body, want)
	}
	wantMessage(t, a.next(), "live:o", 4, epoch, `"raw"`)

	// Several channels: the positions of those with history, by channel.
	multi := post(t, "POST", s.URL+"/api/publish", "application/json", `{"channels":["live:o","quiet:o","chat:o","live:p"],"data":5}`, nil)
	var m struct {
		OK       bool                `json:"ok"`
		Channels map[string]position `json:"channels"`
	}
	if multi.Status != 200 || json.Unmarshal([]byte(multi.Body), &m) != nil || !m.OK || len(m.Channels) != 3 ||
		m.Channels["live:o"] != (position{5, epoch}) || m.Channels["chat:o"] != (position{2, chatEpoch}) ||
		m.Channels["live:p"].Offset != 1 || m.Channels["live:p"].Epoch == "" {
		t.Fatalf("publish to several channels: %d %s", multi.Status, multi.Body)
	}
	if strings.Contains(multi.Body, `"offset":0`) || strings.Contains(multi.Body, "quiet") {
		t.Fatalf("publish to several channels lists a channel without history: %s", multi.Body)
	}
	wantMessage(t, a.next(), "live:o", 5, epoch, "5")
	// Without history: no position in the push nor in the answer.
	if f := q.next(); f.raw != `{"type":"message","channel":"quiet:o","data":5}` {
		t.Fatalf("push without history: %s", f.raw)
	}
	for _, body := range []string{`{"channel":"quiet:o","data":6}`, `{"channels":["quiet:o","plain"],"data":6}`} {
		if r := post(t, "POST", s.URL+"/api/publish", "application/json", body, nil); r.Status != 200 || r.Body != "{\"ok\":true}\n" {
			t.Fatalf("publish %s without history: %d %q, want {\"ok\":true}", body, r.Status, r.Body)
		}
	}

	// A later subscriber learns the current position; live messages follow it.
	b := dial(t, s.WS, nil)
	if r := subscribeReply(t, b, 1, "live:o", ""); r.Offset != 5 || r.Epoch != epoch || r.Recovered != nil {
		t.Fatalf("second subscriber's reply %s, want offset 5 and no recovered", r.raw)
	}
	publishAt(t, s, "live:o", "6")
	wantMessage(t, b.next(), "live:o", 6, epoch, "6")
	wantMessage(t, a.next(), "live:o", 6, epoch, "6")
}

func TestRecoveryAfterReconnect(t *testing.T) {
	s := startServer(t, "--config", historyConfig(t, 100, "10m"))
	a := dial(t, s.WS, nil)
	r := a.call(1, `{"id":1,"op":"subscribe","channel":"chat:r"}`)
	if !r.OK {
		t.Fatalf("subscribe: %+v", r.Error)
	}
	for i := 1; i <= 3; i++ {
		publishJSON(t, s, "chat:r", fmt.Sprint(i))
	}
	var last frame
	for i := 1; i <= 3; i++ {
		last = a.nextMessage()
		if last.Type != "message" || string(last.Data) != fmt.Sprint(i) || last.Offset != uint64(i) || last.Epoch == "" {
			t.Fatalf("message %d: %+v", i, last)
		}
	}
	a.Close()
	// Missed while away.
	for i := 4; i <= 6; i++ {
		publishJSON(t, s, "chat:r", fmt.Sprint(i))
	}
	b := dial(t, s.WS, nil)
	b.send(fmt.Sprintf(`{"id":2,"op":"subscribe","channel":"chat:r","since":{"offset":%d,"epoch":%q}}`, last.Offset, last.Epoch))
	f := b.nextMessage()
	if f.Type != "reply" || !f.OK || f.Recovered == nil || !*f.Recovered || f.Offset != 6 || f.Epoch != last.Epoch {
		t.Fatalf("subscribe reply %+v, want recovered at offset 6", f)
	}
	for i := 4; i <= 6; i++ {
		if m := b.nextMessage(); m.Type != "message" || m.Offset != uint64(i) || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("recovered message %d: %+v", i, m)
		}
	}
	publishJSON(t, s, "chat:r", "7")
	if m := b.nextMessage(); m.Offset != 7 {
		t.Fatalf("live message after recovery: %+v", m)
	}
}

func TestSubscribeSince(t *testing.T) {
	s := nsServer(t)
	var epoch string
	for i := 1; i <= 3; i++ {
		epoch = publishAt(t, s, "live:s", fmt.Sprint(i)).Epoch
	}

	// {"offset":0,"epoch":""} is the beginning: everything kept.
	a := dial(t, s.WS, nil)
	r := subscribeReply(t, a, 1, "live:s", `,"since":{"offset":0,"epoch":""}`)
	if want := fmt.Sprintf(`{"type":"reply","id":1,"ok":true,"offset":3,"epoch":%s,"recovered":true}`, jsonString(epoch)); r.raw != want {
		t.Fatalf("reply %s, want %s", r.raw, want)
	}
	for i := 1; i <= 3; i++ {
		wantMessage(t, a.next(), "live:s", uint64(i), epoch, fmt.Sprint(i))
	}

	// Since the top: recovered, nothing to replay.
	b := dial(t, s.WS, nil)
	if r := subscribeReply(t, b, 1, "live:s", `,"since":`+(position{3, epoch}).since()); *r.Recovered != true || r.Offset != 3 {
		t.Fatalf("since the top: %s", r.raw)
	}
	// An offset this epoch never had: not recovered.
	c := dial(t, s.WS, nil)
	if r := subscribeReply(t, c, 1, "live:s", `,"since":`+(position{99, epoch}).since()); *r.Recovered != false || r.Offset != 3 || r.Epoch != epoch {
		t.Fatalf("since an offset from the future: %s", r.raw)
	}
	// An unknown epoch: not recovered.
	d := dial(t, s.WS, nil)
	if r := subscribeReply(t, d, 1, "live:s", `,"since":{"offset":1,"epoch":"nope"}`); *r.Recovered != false || r.Offset != 3 {
		t.Fatalf("since another epoch: %s", r.raw)
	}
	// None of them got a replay: the next frame of each is the next message.
	publishAt(t, s, "live:s", "4")
	for _, conn := range []*wsConn{a, b, c, d} {
		wantMessage(t, conn.next(), "live:s", 4, epoch, "4")
	}

	// A channel without history: recovered false, and no position.
	q := dial(t, s.WS, nil)
	if r := subscribeReply(t, q, 1, "quiet:s", `,"since":{"offset":5,"epoch":"x"}`); r.raw != `{"type":"reply","id":1,"ok":true,"recovered":false}` {
		t.Fatalf("since on a channel without history: %s", r.raw)
	}
	if r := subscribeReply(t, q, 2, "plain", `,"since":{"offset":0,"epoch":""}`); r.raw != `{"type":"reply","id":2,"ok":true,"recovered":false}` {
		t.Fatalf("since on the default namespace: %s", r.raw)
	}
}

// TestRecoveryUnderConcurrentPublishing has clients disconnect and recover
// over and over while a publisher publishes a sequence without pause, so
// that messages are published during the gaps and during the recoveries.
// Each client must see a gapless sequence: nothing lost, nothing twice,
// nothing out of order.
func TestRecoveryUnderConcurrentPublishing(t *testing.T) {
	// Queues large enough that a reader falling behind on a loaded machine
	// is not closed as a slow consumer, and no rate limit on the
	// publisher: neither is under test here.
	s := nsServer(t, "--queue-max-messages", "1000000", "--queue-max-bytes", "256MiB",
		"--client-rate-limit", "1000000", "--client-rate-burst", "1000000")
	const rounds, perRound, gap = 150, 5, 5
	// A busy channel, and one with a lone client, which is the channel's
	// first subscriber on the node every time it comes back.
	channels := map[string]int{"live:seq": 3, "live:solo": 1}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	pubErrs := make(chan error, len(channels))
	errs := make(chan error, 10)
	var clients sync.WaitGroup
	published := map[string]*atomic.Uint64{}
	for ch, n := range channels {
		p := &atomic.Uint64{}
		published[ch] = p
		wg.Go(func() { pubErrs <- sequencePublisher(s.WS, ch, stop, p) })
		eventually(t, 20*time.Second, "the first publication to "+ch, func() bool { return p.Load() > 0 })
		for range n {
			clients.Go(func() { errs <- recoveringClient(s.WS, ch, rounds, perRound, gap, p) })
		}
	}
	clients.Wait()
	close(stop)
	wg.Wait()
	close(pubErrs)
	close(errs)
	for err := range pubErrs {
		if err != nil {
			t.Errorf("publisher: %v", err)
		}
	}
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for ch, p := range published {
		t.Logf("%s: %d messages published", ch, p.Load())
	}
}

// sequencePublisher publishes 1, 2, 3... to ch over a WebSocket until stop
// is closed, each publish reply checked to carry the offset equal to the
// number, and counts them in published. It keeps a window of publishes in
// flight, so that publications come fast and often fall in the middle of
// a subscriber's recovery.
func sequencePublisher(wsURL, ch string, stop <-chan struct{}, published *atomic.Uint64) error {
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		return err
	}
	var welcome frame
	if err := conn.ReadJSON(&welcome); err != nil {
		conn.Close()
		return err
	}
	const window = 32
	inFlight := make(chan struct{}, window)
	var readErr error
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			var f frame
			if err := conn.ReadJSON(&f); err != nil {
				return // closed once stop is
			}
			if f.Type != "reply" || f.ID == nil || !f.OK || f.Offset != uint64(*f.ID) || f.Epoch == "" {
				readErr = fmt.Errorf("publish reply %+v, want ok with offset = id", f)
				return
			}
			published.Store(f.Offset)
			<-inFlight
		}
	}()
	defer func() {
		conn.Close()
		<-readDone
	}()
	for i := uint64(1); ; i++ {
		select {
		case inFlight <- struct{}{}:
		case <-stop:
			return nil
		case <-readDone:
			return readErr
		}
		if err := conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"id":%d,"op":"publish","channel":%q,"data":%d}`, i, ch, i)); err != nil {
			return err
		}
	}
}

// recoveringClient subscribes to ch, then, rounds times: reads perRound
// messages and leaves, then comes back and recovers with since. Every
// fourth round it disconnects and waits for gap more publications before
// it reconnects; the other rounds it unsubscribes and subscribes again on
// the same connection at once (cheaper, so more recoveries). It returns an
// error unless every message came in sequence after the one before, in the
// same epoch, and every subscribe reply came before the channel's pushes.
func recoveringClient(wsURL, ch string, rounds, perRound, gap int, published *atomic.Uint64) error {
	var conn *websocket.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	read := func() (frame, error) {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, b, err := conn.ReadMessage()
		if err != nil {
			return frame{}, err
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			return f, fmt.Errorf("frame is not JSON: %q", b)
		}
		f.raw = string(b)
		return f, nil
	}
	dial := func() error {
		c, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
		if err != nil {
			return err
		}
		conn = c
		if f, err := read(); err != nil || f.Type != "welcome" {
			return fmt.Errorf("welcome: %s %v", f.raw, err)
		}
		return nil
	}
	// call sends a command; its reply must be the next frame, except for
	// the pushes that check accepts (nil: none).
	call := func(id int64, cmd string, check func(frame) error) (frame, error) {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
			return frame{}, err
		}
		for {
			f, err := read()
			if err != nil {
				return f, err
			}
			if f.Type == "reply" && f.ID != nil && *f.ID == id && f.OK {
				return f, nil
			}
			if check == nil {
				return f, fmt.Errorf("got %s before the reply to %s", f.raw, cmd)
			}
			if err := check(f); err != nil {
				return f, err
			}
		}
	}
	var last position
	next := func(f frame) error {
		want := last.Offset + 1
		if f.Type != "message" || f.Offset != want || f.Epoch != last.Epoch || string(f.Data) != strconv.FormatUint(want, 10) {
			return fmt.Errorf("got %s after offset %d in epoch %q: a gap, a duplicate or disorder", f.raw, last.Offset, last.Epoch)
		}
		last.Offset = want
		return nil
	}
	subscribe := fmt.Sprintf(`{"id":1,"op":"subscribe","channel":%q`, ch)

	if err := dial(); err != nil {
		return err
	}
	r, err := call(1, subscribe+"}", nil)
	if err != nil {
		return err
	}
	last = position{r.Offset, r.Epoch}
	for round := range rounds {
		for range perRound {
			f, err := read()
			if err == nil {
				err = next(f)
			}
			if err != nil {
				return fmt.Errorf("round %d: %v", round, err)
			}
		}
		if round == rounds-1 {
			break
		}
		target := last.Offset
		if round%4 == 0 {
			conn.Close()
			target += uint64(gap)
			deadline := time.Now().Add(30 * time.Second)
			for published.Load() < target {
				if time.Now().After(deadline) {
					return fmt.Errorf("round %d: the publisher did not reach %d", round, target)
				}
				time.Sleep(time.Millisecond)
			}
			if err := dial(); err != nil {
				return fmt.Errorf("round %d: %v", round, err)
			}
		} else if _, err := call(2, fmt.Sprintf(`{"id":2,"op":"unsubscribe","channel":%q}`, ch), next); err != nil {
			// Pushes queued before the unsubscribe reply still count.
			return fmt.Errorf("round %d: unsubscribe: %v", round, err)
		}
		r, err := call(1, subscribe+`,"since":`+last.since()+"}", nil)
		if err != nil {
			return fmt.Errorf("round %d: %v", round, err)
		}
		if r.Recovered == nil || !*r.Recovered || r.Epoch != last.Epoch || r.Offset < target {
			return fmt.Errorf("round %d: resubscribe since %+v: %s, want recovered at %d or later", round, last, r.raw, target)
		}
	}
	return nil
}

func TestRecoveryAfterServerRestart(t *testing.T) {
	cfg := writeConfig(t, namespacesYAML)
	s := startServer(t, "--config", cfg)
	a := dial(t, s.WS, nil)
	subscribeReply(t, a, 1, "live:restart", "")
	var last position
	for i := 1; i <= 3; i++ {
		last = publishAt(t, s, "live:restart", fmt.Sprint(i))
		wantMessage(t, a.next(), "live:restart", uint64(i), last.Epoch, fmt.Sprint(i))
	}
	addr := s.Addr
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(t) }()
	a.expectClose(1001) // reading, so that the close handshake completes
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}

	// A new process on the same address: the memory broker's history is
	// gone, and the channel's offsets start again in a new epoch.
	waitAddrFree(t, addr)
	s2 := startServer(t, "--config", cfg, "--addr", addr)
	if s2.Addr != addr {
		t.Fatalf("restarted on %s, want %s", s2.Addr, addr)
	}
	p := publishAt(t, s2, "live:restart", "1000")
	if p.Offset != 1 || p.Epoch == last.Epoch {
		t.Fatalf("first publication after the restart: %+v; want offset 1 in an epoch other than %q", p, last.Epoch)
	}
	b := dial(t, s2.WS, nil)
	r := subscribeReply(t, b, 1, "live:restart", `,"since":`+last.since())
	if r.Recovered == nil || *r.Recovered || r.Offset != 1 || r.Epoch != p.Epoch {
		t.Fatalf("recovery across a restart: %s; want recovered false at offset 1 of epoch %q", r.raw, p.Epoch)
	}
	// Nothing is replayed; live messages follow in the new epoch.
	p2 := publishAt(t, s2, "live:restart", "1001")
	wantMessage(t, b.next(), "live:restart", 2, p2.Epoch, "1001")
}

func TestRecoveryWindowExceeded(t *testing.T) {
	s := nsServer(t)
	t.Run("size", func(t *testing.T) {
		a := dial(t, s.WS, nil)
		subscribeReply(t, a, 1, "small:w", "")
		first := publishAt(t, s, "small:w", "1")
		wantMessage(t, a.next(), "small:w", 1, first.Epoch, "1")
		a.Close()
		for i := 2; i <= 6; i++ { // 5 missed; the history keeps 4, 5, 6
			publishAt(t, s, "small:w", fmt.Sprint(i))
		}
		b := dial(t, s.WS, nil)
		r := subscribeReply(t, b, 1, "small:w", `,"since":`+first.since())
		if r.Recovered == nil || *r.Recovered || r.Offset != 6 || r.Epoch != first.Epoch {
			t.Fatalf("since 1 with 2 and 3 dropped: %s, want recovered false at offset 6", r.raw)
		}
		// The edge of the window: since 3, the history has 4, 5, 6.
		c := dial(t, s.WS, nil)
		r = subscribeReply(t, c, 1, "small:w", `,"since":`+(position{3, first.Epoch}).since())
		if r.Recovered == nil || !*r.Recovered {
			t.Fatalf("since 3 with 4-6 kept: %s, want recovered", r.raw)
		}
		for i := 4; i <= 6; i++ {
			wantMessage(t, c.next(), "small:w", uint64(i), first.Epoch, fmt.Sprint(i))
		}
		publishAt(t, s, "small:w", "7")
		wantMessage(t, b.next(), "small:w", 7, first.Epoch, "7") // b got no replay
		wantMessage(t, c.next(), "small:w", 7, first.Epoch, "7")
	})
	t.Run("ttl", func(t *testing.T) {
		a := dial(t, s.WS, nil)
		subscribeReply(t, a, 1, "brief:w", "")
		first := publishAt(t, s, "brief:w", "1")
		wantMessage(t, a.next(), "brief:w", 1, first.Epoch, "1")
		a.Close()
		publishAt(t, s, "brief:w", "2") // missed, and gone after 300ms
		waitHistoryEmpty(t, s, "brief:w")
		b := dial(t, s.WS, nil)
		r := subscribeReply(t, b, 1, "brief:w", `,"since":`+first.since())
		if r.Recovered == nil || *r.Recovered {
			t.Fatalf("since 1 with 2 expired: %s, want recovered false", r.raw)
		}
		// No replay: the next frame is the next publication.
		p := publishAt(t, s, "brief:w", "3")
		if f := b.next(); f.Type != "message" || f.Offset != p.Offset || string(f.Data) != "3" {
			t.Fatalf("after a failed recovery: %s, want the live message 3", f.raw)
		}
	})
}

// historyAnswer is the body of GET /api/history/{channel}.
type historyAnswer struct {
	Offset   uint64         `json:"offset"`
	Epoch    string         `json:"epoch"`
	Complete *bool          `json:"complete"`
	Messages []historyEntry `json:"messages"`
}

// waitHistoryEmpty waits until the channel's history has no message left.
func waitHistoryEmpty(t *testing.T, s *server, ch string) historyAnswer {
	t.Helper()
	var h historyAnswer
	eventually(t, 15*time.Second, "the history of "+ch+" to expire", func() bool {
		h = historyAnswer{}
		getJSON(t, s.URL+"/api/history/"+ch, &h)
		return len(h.Messages) == 0
	})
	return h
}

func TestHistoryExpiresAfterTTL(t *testing.T) {
	s := nsServer(t)
	start := time.Now()
	p1 := publishAt(t, s, "brief:x", "1")
	publishAt(t, s, "brief:x", "2")
	var h historyAnswer
	getJSON(t, s.URL+"/api/history/brief:x", &h)
	if time.Since(start) < 250*time.Millisecond && (len(h.Messages) != 2 || h.Offset != 2 || h.Epoch != p1.Epoch) {
		t.Fatalf("history within the TTL: %+v", h)
	}
	h = waitHistoryEmpty(t, s, "brief:x")
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
		t.Fatalf("messages gone after %v, before the 300ms TTL", elapsed)
	}
	// Recovery from the old position is impossible now.
	var since historyAnswer
	getJSON(t, s.URL+"/api/history/brief:x?since=1&epoch="+p1.Epoch, &since)
	if since.Complete == nil || *since.Complete || len(since.Messages) != 0 {
		t.Fatalf("history since 1 after expiry: %+v, want incomplete and empty", since)
	}
	// The next publication continues from what the history reports: the
	// same epoch at the next offset, or a new epoch from offset 1.
	p3 := publishAt(t, s, "brief:x", "3")
	sameEpoch := h.Epoch != "" && p3 == position{h.Offset + 1, h.Epoch}
	newEpoch := p3.Offset == 1 && p3.Epoch != p1.Epoch
	if !sameEpoch && !newEpoch {
		t.Fatalf("after expiry the history reported position %d/%q, then a publication got %d/%q", h.Offset, h.Epoch, p3.Offset, p3.Epoch)
	}
	// A client that took the reported position recovers what follows it.
	c := dial(t, s.WS, nil)
	r := subscribeReply(t, c, 1, "brief:x", `,"since":`+(position{h.Offset, h.Epoch}).since())
	if r.Recovered == nil || !*r.Recovered {
		t.Fatalf("since the position reported after expiry: %s, want recovered", r.raw)
	}
	wantMessage(t, c.next(), "brief:x", p3.Offset, p3.Epoch, "3")
}

// historyReply is the expected history reply: position and messages.
func historyReply(id int64, p position, complete string, offsets ...uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"type":"reply","id":%d,"ok":true,"offset":%d,"epoch":%s`, id, p.Offset, jsonString(p.Epoch))
	if complete != "" {
		b.WriteString(`,"complete":` + complete)
	}
	b.WriteString(`,"messages":[`)
	for i, o := range offsets {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"offset":%d,"data":%d}`, o, o*10)
	}
	b.WriteString("]}")
	return b.String()
}

func TestHistoryOp(t *testing.T) {
	s := nsServer(t)
	var top position
	for i := 1; i <= 5; i++ { // the history keeps 3, 4, 5
		top = publishAt(t, s, "small:h", fmt.Sprint(i*10))
	}
	c := dial(t, s.WS, nil)
	if f := c.call(1, `{"id":1,"op":"history","channel":"small:h"}`); f.OK || f.Error.Code != "forbidden" {
		t.Fatalf("history before subscribing: %s, want forbidden", f.raw)
	}
	subscribeReply(t, c, 2, "small:h", "")
	E := top.Epoch
	for _, tt := range []struct {
		args, complete string
		offsets        []uint64
	}{
		{``, "", []uint64{3, 4, 5}},
		{`,"limit":2`, "", []uint64{4, 5}},
		{`,"limit":0`, "", []uint64{3, 4, 5}},
		{`,"limit":1000000000`, "", []uint64{3, 4, 5}},       // clamped to history_size
		{`,"limit":9007199254740993`, "", []uint64{3, 4, 5}}, // beyond float64's integers
		{`,"since":` + (position{3, E}).since(), "true", []uint64{4, 5}},
		{`,"since":` + (position{3, E}).since() + `,"limit":1`, "true", []uint64{4}},
		{`,"since":` + (position{2, E}).since(), "true", []uint64{3, 4, 5}},
		{`,"since":` + (position{5, E}).since(), "true", nil},
		{`,"since":` + (position{1, E}).since(), "false", []uint64{3, 4, 5}}, // 2 was dropped
		{`,"since":{"offset":0,"epoch":""}`, "false", []uint64{3, 4, 5}},     // 1 and 2 were dropped
		{`,"since":` + (position{3, "other"}).since(), "false", nil},
		{`,"since":` + (position{99, E}).since(), "false", nil},
	} {
		want := historyReply(10, top, tt.complete, tt.offsets...)
		if f := c.call(10, `{"id":10,"op":"history","channel":"small:h"`+tt.args+`}`); f.raw != want {
			t.Errorf("history%s:\ngot  %s\nwant %s", tt.args, f.raw, want)
		}
	}

	// A huge limit is clamped to 1000 where history_size is larger.
	subscribeReply(t, c, 3, "big:h", "")
	var bigTop position
	for i := 1; i <= 1100; i++ {
		bigTop = publishAt(t, s, "big:h", fmt.Sprint(i*10))
	}
	for i := 0; i < 1100; i++ {
		c.next() // the live pushes
	}
	for _, args := range []string{``, `,"limit":5000`, `,"limit":0`} {
		f := c.call(11, `{"id":11,"op":"history","channel":"big:h"`+args+`}`)
		if !f.OK || len(f.Messages) != 1000 || f.Messages[0].Offset != 101 || f.Messages[999].Offset != 1100 || f.Offset != 1100 || f.Epoch != bigTop.Epoch {
			t.Fatalf("history of big:h%s: %d messages, want the newest 1000 (101-1100): %.200s", args, len(f.Messages), f.raw)
		}
	}
	f := c.call(12, `{"id":12,"op":"history","channel":"big:h","limit":5000,"since":`+(position{50, bigTop.Epoch}).since()+`}`)
	if !f.OK || len(f.Messages) != 1000 || f.Messages[0].Offset != 51 || f.Messages[999].Offset != 1050 || f.Complete == nil || !*f.Complete {
		t.Fatalf("history of big:h since 50: %d messages, want 51-1050 and complete: %.200s", len(f.Messages), f.raw)
	}

	// Bad input: an error reply with the command's id; the connection stays.
	subscribeReply(t, c, 4, "quiet:h", "")
	for _, tt := range []struct{ name, cmd, code string }{
		{"negative limit", `"channel":"small:h","limit":-1`, "bad_request"},
		{"limit as a string", `"channel":"small:h","limit":"5"`, "bad_request"},
		{"fractional limit", `"channel":"small:h","limit":1.5`, "bad_request"},
		{"negative since offset", `"channel":"small:h","since":{"offset":-1,"epoch":"x"}`, "bad_request"},
		{"since offset as a string", `"channel":"small:h","since":{"offset":"3","epoch":"x"}`, "bad_request"},
		{"since offset too large", `"channel":"small:h","since":{"offset":1e30,"epoch":"x"}`, "bad_request"},
		{"since epoch as a number", `"channel":"small:h","since":{"offset":3,"epoch":7}`, "bad_request"},
		{"since a number", `"channel":"small:h","since":5`, "bad_request"},
		{"since a string", `"channel":"small:h","since":"3"`, "bad_request"},
		{"since a list", `"channel":"small:h","since":[3]`, "bad_request"},
		{"since epoch too long", `"channel":"small:h","since":{"offset":3,"epoch":"` + strings.Repeat("e", 65) + `"}`, "bad_request"},
		{"no history in the namespace", `"channel":"quiet:h"`, "not_found"},
		{"unknown namespace", `"channel":"ghost:h"`, "not_found"},
		{"bad channel", `"channel":"no way"`, "bad_request"},
		{"missing channel", `"limit":1`, "bad_request"},
	} {
		f := c.call(20, `{"id":20,"op":"history",`+tt.cmd+`}`)
		if f.OK || f.Error == nil || f.Error.Code != tt.code {
			t.Errorf("%s: %s, want %s", tt.name, f.raw, tt.code)
		}
	}
	// The same bad since values on subscribe.
	for _, since := range []string{`{"offset":-1,"epoch":"x"}`, `{"offset":"3","epoch":"x"}`, `{"offset":3,"epoch":7}`, `5`, `"x"`} {
		if f := c.call(21, `{"id":21,"op":"subscribe","channel":"small:other","since":`+since+`}`); f.OK || f.Error.Code != "bad_request" {
			t.Errorf("subscribe with since %s: %s, want bad_request", since, f.raw)
		}
	}
	if f := c.call(22, `{"id":22,"op":"ping"}`); !f.OK {
		t.Fatalf("ping after bad input: %s", f.raw)
	}
	p := publishAt(t, s, "small:h", "60")
	wantMessage(t, c.next(), "small:h", p.Offset, p.Epoch, "60")
}

func TestHistoryAPI(t *testing.T) {
	s := nsServer(t)
	var top position
	for i := 1; i <= 5; i++ { // the history keeps 3, 4, 5
		top = publishAt(t, s, "small:h", fmt.Sprint(i*10))
	}
	E := top.Epoch
	body := func(complete string, offsets ...uint64) string {
		b := strings.TrimPrefix(historyReply(0, top, complete, offsets...), `{"type":"reply","id":0,"ok":true,`)
		return "{" + b + "\n"
	}
	for _, tt := range []struct{ query, want string }{
		{``, body("", 3, 4, 5)},
		{`?limit=2`, body("", 4, 5)},
		{`?limit=0`, body("", 3, 4, 5)},
		{`?limit=1000000000`, body("", 3, 4, 5)},
		{`?since=3`, body("true", 4, 5)}, // in the current epoch
		{`?since=3&epoch=` + E, body("true", 4, 5)},
		{`?since=3&limit=1`, body("true", 4)},
		{`?since=5`, body("true")},
		{`?since=1`, body("false", 3, 4, 5)},
		{`?since=0&epoch=`, body("false", 3, 4, 5)},
		{`?since=3&epoch=other`, body("false")},
	} {
		r := post(t, "GET", s.URL+"/api/history/small:h"+tt.query, "", "", nil)
		if r.Status != 200 || r.Body != tt.want {
			t.Errorf("GET /api/history/small:h%s: %d\ngot  %s\nwant %s", tt.query, r.Status, r.Body, tt.want)
		}
	}
	// A channel that never had a message.
	if r := post(t, "GET", s.URL+"/api/history/small:never", "", "", nil); r.Status != 200 || r.Body != "{\"offset\":0,\"epoch\":\"\",\"messages\":[]}\n" {
		t.Errorf("history of an empty channel: %d %s", r.Status, r.Body)
	}
	// A huge limit is clamped to 1000 where history_size is larger.
	for i := 1; i <= 1001; i++ {
		publishAt(t, s, "big:h", fmt.Sprint(i))
	}
	for _, q := range []string{"", "?limit=5000"} {
		var h historyAnswer
		getJSON(t, s.URL+"/api/history/big:h"+q, &h)
		if len(h.Messages) != 1000 || h.Messages[0].Offset != 2 || h.Offset != 1001 {
			t.Errorf("GET /api/history/big:h%s: %d messages from %v, want 1000 from offset 2", q, len(h.Messages), h.Messages[:min(1, len(h.Messages))])
		}
	}
	for _, q := range []string{"?limit=-1", "?limit=x", "?limit=1.5", "?since=-1", "?since=x", "?since=1.5"} {
		if r := post(t, "GET", s.URL+"/api/history/small:h"+q, "", "", nil); r.Status != 400 || r.errorCode() != "bad_request" {
			t.Errorf("GET /api/history/small:h%s: %d %s, want 400 bad_request", q, r.Status, r.Body)
		}
	}
}

// presenceIDs returns the client ids of the channel's presence, by API
// and by the op over c (which subscribes to ch), after checking that both
// agree and are sorted.
func presenceIDs(t *testing.T, s *server, c *pump, ch string) []string {
	t.Helper()
	var api struct {
		Clients []clientInfo `json:"clients"`
	}
	getJSON(t, s.URL+"/api/presence/"+ch, &api)
	op := c.call(50, `{"id":50,"op":"presence","channel":"`+ch+`"}`)
	if !op.OK {
		t.Fatalf("presence op: %s", op.raw)
	}
	ids := func(cs []clientInfo) []string {
		out := []string{}
		for _, c := range cs {
			out = append(out, c.ClientID)
		}
		return out
	}
	a, o := ids(api.Clients), ids(op.Clients)
	if !slices.IsSorted(a) || !slices.IsSorted(o) {
		t.Fatalf("presence not sorted by client_id: API %v, op %v", a, o)
	}
	if !slices.Equal(a, o) {
		// They may differ only while a change is under way.
		return nil
	}
	return a
}

// waitPresence waits until the channel's presence is exactly ids.
func waitPresence(t *testing.T, s *server, c *pump, ch string, ids ...string) {
	t.Helper()
	slices.Sort(ids)
	var got []string
	deadline := time.Now().Add(pumpWait)
	for {
		if got = presenceIDs(t, s, c, ch); slices.Equal(got, ids) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence of %s is %v, want %v", ch, got, ids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// joinLeave reads p's frames until the join or leave of ch and returns
// "join <client id>" or "leave <client id>"; other frames are skipped.
func (p *pump) joinLeave(ch string) string {
	p.c.t.Helper()
	for {
		f := p.next()
		if (f.Type == "join" || f.Type == "leave") && f.Channel == ch {
			if f.Client == nil || f.Client.ClientID == "" {
				p.c.t.Fatalf("%s without a client: %s", f.Type, f.raw)
			}
			return f.Type + " " + f.Client.ClientID
		}
	}
}

func TestPresenceAndJoinLeave(t *testing.T) {
	// A short heartbeat, so that a silent client times out quickly; every
	// other client reads all along (pump) and so answers the pings.
	s := nsServer(t, "--ping-interval", "100ms", "--pong-timeout", "500ms")
	const ch = "chat:room"
	o := dial(t, s.WS, nil)
	op := o.pump()
	if r := op.call(1, `{"id":1,"op":"subscribe","channel":"`+ch+`"}`); !r.OK {
		t.Fatalf("subscribe: %s", r.raw)
	}
	// The subscriber hears its own join, after its reply.
	if got := op.joinLeave(ch); got != "join "+o.Welcome.ClientID {
		t.Fatalf("observer's first join/leave: %s, want its own join", got)
	}
	o2 := dial(t, s.WS+"?channels="+ch, nil) // a second observer, subscribed on connect
	op2 := o2.pump()
	if got := op.joinLeave(ch); got != "join "+o2.Welcome.ClientID {
		t.Fatalf("join of a ?channels= subscriber: %s", got)
	}
	observers := []*pump{op, op2}
	expect := func(what string) {
		t.Helper()
		for i, p := range observers {
			if got := p.joinLeave(ch); got != what {
				t.Fatalf("observer %d: got %q, want %q", i, got, what)
			}
		}
	}
	waitPresence(t, s, op, ch, o.Welcome.ClientID, o2.Welcome.ClientID)
	op2.joinLeave(ch) // its own join

	// Subscribe and unsubscribe.
	a := dial(t, s.WS, nil)
	ap := a.pump()
	if r := ap.call(2, `{"id":2,"op":"subscribe","channel":"`+ch+`"}`); !r.OK {
		t.Fatalf("subscribe: %s", r.raw)
	}
	expect("join " + a.Welcome.ClientID)
	waitPresence(t, s, op, ch, o.Welcome.ClientID, o2.Welcome.ClientID, a.Welcome.ClientID)
	if r := ap.call(3, `{"id":3,"op":"unsubscribe","channel":"`+ch+`"}`); !r.OK {
		t.Fatalf("unsubscribe: %s", r.raw)
	}
	expect("leave " + a.Welcome.ClientID)
	waitPresence(t, s, op, ch, o.Welcome.ClientID, o2.Welcome.ClientID)

	// Connect with ?channels=, then disconnect.
	b := dial(t, s.WS+"?channels="+ch, nil)
	b.pump()
	expect("join " + b.Welcome.ClientID)
	waitPresence(t, s, op, ch, o.Welcome.ClientID, o2.Welcome.ClientID, b.Welcome.ClientID)
	b.Close()
	expect("leave " + b.Welcome.ClientID)
	waitPresence(t, s, op, ch, o.Welcome.ClientID, o2.Welcome.ClientID)

	// A client that answers no ping: the heartbeat times it out.
	c := dial(t, s.WS+"?channels="+ch, nil)
	c.SetPingHandler(func(string) error { return nil })
	cp := c.pump()
	expect("join " + c.Welcome.ClientID)
	cp.expectClose(4010)
	expect("leave " + c.Welcome.ClientID)
	waitPresence(t, s, op, ch, o.Welcome.ClientID, o2.Welcome.ClientID)

	// The frames themselves.
	d := dial(t, s.WS, nil)
	d.pump().call(4, `{"id":4,"op":"subscribe","channel":"`+ch+`"}`)
	wantFrame := func(typ string) {
		t.Helper()
		f := op.next()
		for f.Type != typ {
			f = op.next()
		}
		if want := fmt.Sprintf(`{"type":%q,"channel":%q,"client":{"client_id":%q}}`, typ, ch, d.Welcome.ClientID); f.raw != want {
			t.Fatalf("%s frame %s, want %s", typ, f.raw, want)
		}
	}
	wantFrame("join")
	d.Close()
	wantFrame("leave")
}

func TestPresenceStats(t *testing.T) {
	s := nsServer(t)
	const ch = "pres:stats"
	conns := []*wsConn{dial(t, s.WS+"?channels="+ch, nil)}
	for range 4 {
		c := dial(t, s.WS, nil)
		subscribeReply(t, c, 1, ch, "")
		conns = append(conns, c)
	}
	stats := func(want int) {
		t.Helper()
		f := conns[1].call(2, `{"id":2,"op":"presence_stats","channel":"`+ch+`"}`)
		if want := fmt.Sprintf(`{"type":"reply","id":2,"ok":true,"num_clients":%d,"num_users":0}`, want); f.raw != want {
			t.Fatalf("presence_stats: %s, want %s", f.raw, want)
		}
		r := post(t, "GET", s.URL+"/api/presence_stats/"+ch, "", "", nil)
		if want := fmt.Sprintf("{\"num_clients\":%d,\"num_users\":0}\n", want); r.Status != 200 || r.Body != want {
			t.Fatalf("GET /api/presence_stats: %d %s, want %s", r.Status, r.Body, want)
		}
	}
	stats(5)
	// The presence list: the same clients, sorted by client_id.
	f := conns[1].call(3, `{"id":3,"op":"presence","channel":"`+ch+`"}`)
	var ids []string
	for _, c := range conns {
		ids = append(ids, c.Welcome.ClientID)
	}
	slices.Sort(ids)
	var got []string
	for _, c := range f.Clients {
		got = append(got, c.ClientID)
	}
	if !f.OK || !slices.Equal(got, ids) {
		t.Fatalf("presence %s, want %v", f.raw, ids)
	}
	conns[2].call(4, `{"id":4,"op":"unsubscribe","channel":"`+ch+`"}`)
	stats(4)
	conns[3].Close()
	conns[0].Close()
	eventually(t, pumpWait, "two leaving clients to leave the presence", func() bool {
		r := post(t, "GET", s.URL+"/api/presence_stats/"+ch, "", "", nil)
		return r.Body == "{\"num_clients\":2,\"num_users\":0}\n"
	})
	stats(2)

	// Presence needs a subscription and presence on for the namespace.
	c := conns[1]
	for _, tt := range []struct{ cmd, code string }{
		{`{"id":5,"op":"presence","channel":"pres:other"}`, "forbidden"},
		{`{"id":5,"op":"presence_stats","channel":"pres:other"}`, "forbidden"},
		{`{"id":5,"op":"presence","channel":"ghost:x"}`, "not_found"},
		{`{"id":5,"op":"presence","channel":"bad name"}`, "bad_request"},
	} {
		if f := c.call(5, tt.cmd); f.OK || f.Error.Code != tt.code {
			t.Errorf("%s: %s, want %s", tt.cmd, f.raw, tt.code)
		}
	}
	subscribeReply(t, c, 6, "quiet:p", "")
	for _, op := range []string{"presence", "presence_stats"} {
		if f := c.call(7, `{"id":7,"op":"`+op+`","channel":"quiet:p"}`); f.OK || f.Error.Code != "not_found" {
			t.Errorf("%s where presence is off: %s, want not_found", op, f.raw)
		}
	}
}

// churner subscribes to and unsubscribes from ch cycles times, then
// subscribes and drops the connection. It returns its client id.
func churner(wsURL, ch string, cycles int) (string, error) {
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var welcome frame
	if err := conn.ReadJSON(&welcome); err != nil {
		return "", err
	}
	call := func(id int, op string) error {
		if err := conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"id":%d,"op":%q,"channel":%q}`, id, op, ch)); err != nil {
			return err
		}
		for {
			var f frame
			if err := conn.ReadJSON(&f); err != nil {
				return err
			}
			if f.Type == "reply" && f.ID != nil && *f.ID == int64(id) {
				if !f.OK {
					return fmt.Errorf("%s: %+v", op, f.Error)
				}
				return nil
			}
		}
	}
	for i := range cycles {
		if err := call(2*i, "subscribe"); err != nil {
			return "", err
		}
		if err := call(2*i+1, "unsubscribe"); err != nil {
			return "", err
		}
	}
	return welcome.ClientID, call(2*cycles, "subscribe")
}

func TestJoinLeaveOrderUnderChurn(t *testing.T) {
	s := nsServer(t)
	const ch, churners, cycles = "chat:churn", 8, 3
	var observers []*pump
	for range 3 {
		c := dial(t, s.WS, nil)
		p := c.pump()
		if r := p.call(1, `{"id":1,"op":"subscribe","channel":"`+ch+`"}`); !r.OK {
			t.Fatal(r.raw)
		}
		observers = append(observers, p)
	}
	ids := make(chan string, churners)
	errs := make(chan error, churners)
	var wg sync.WaitGroup
	for range churners {
		wg.Go(func() {
			id, err := churner(s.WS, ch, cycles)
			ids <- id
			errs <- err
		})
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	churnerIDs := map[string]bool{}
	for id := range ids {
		churnerIDs[id] = true
	}
	// Each observer: per churner, join and leave alternate, starting with
	// a join: cycles+1 of each.
	for i, p := range observers {
		seen := map[string][]string{}
		total := 0
		for total < churners*2*(cycles+1) {
			ev := strings.Fields(p.joinLeave(ch))
			if !churnerIDs[ev[1]] {
				continue // an observer's
			}
			seen[ev[1]] = append(seen[ev[1]], ev[0])
			total++
		}
		for id, evs := range seen {
			for j, ev := range evs {
				if want := []string{"join", "leave"}[j%2]; ev != want {
					t.Fatalf("observer %d, client %s: events %v: a leave before its join or a repeat", i, id, evs)
				}
			}
		}
		if len(seen) != churners {
			t.Fatalf("observer %d heard %d churners, want %d", i, len(seen), churners)
		}
	}
}

func TestJoinLeaveOff(t *testing.T) {
	s := nsServer(t)
	for _, ch := range []string{"pres:off", "plain", "live:off"} {
		o := dial(t, s.WS, nil)
		subscribeReply(t, o, 1, ch, "")
		c := dial(t, s.WS+"?channels="+ch, nil)
		subscribeReply(t, c, 2, ch, "") // again: a no-op
		c.call(3, `{"id":3,"op":"unsubscribe","channel":"`+ch+`"}`)
		subscribeReply(t, c, 4, ch, "")
		d := dial(t, s.WS+"?channels="+ch, nil)
		c.Close()
		d.Close()
		// The observer's next frame is the next message: no join, no leave.
		// (Wait until both have left, so that a leave would come first.)
		eventually(t, pumpWait, "the clients to leave", func() bool {
			var chans struct {
				Channels []struct {
					Channel     string `json:"channel"`
					Subscribers int    `json:"subscribers"`
				} `json:"channels"`
			}
			getJSON(t, s.URL+"/api/channels?prefix="+ch, &chans)
			return len(chans.Channels) == 1 && chans.Channels[0].Subscribers == 1
		})
		publishJSON(t, s, ch, `"after"`)
		if f := o.next(); f.Type != "message" || string(f.Data) != `"after"` {
			t.Fatalf("%s: got %s, want the message and no join/leave", ch, f.raw)
		}
	}
}

func TestChannelsAPI(t *testing.T) {
	s := nsServer(t)
	a, b := dial(t, s.WS, nil), dial(t, s.WS, nil)
	for _, ch := range []string{"live:a", "live:b", "plain"} {
		subscribeReply(t, a, 1, ch, "")
	}
	subscribeReply(t, b, 1, "live:a", "")
	c := dial(t, s.WS+"?channels=live:b,pres:z", nil)
	channels := func(query, want string) {
		t.Helper()
		r := post(t, "GET", s.URL+"/api/channels"+query, "", "", nil)
		if r.Status != 200 || r.Body != want+"\n" {
			t.Fatalf("GET /api/channels%s: %d %s, want %s", query, r.Status, r.Body, want)
		}
	}
	channels("", `{"channels":[{"channel":"live:a","subscribers":2},{"channel":"live:b","subscribers":2},{"channel":"plain","subscribers":1},{"channel":"pres:z","subscribers":1}]}`)
	channels("?prefix=live:", `{"channels":[{"channel":"live:a","subscribers":2},{"channel":"live:b","subscribers":2}]}`)
	channels("?prefix=live:a", `{"channels":[{"channel":"live:a","subscribers":2}]}`)
	channels("?prefix=p", `{"channels":[{"channel":"plain","subscribers":1},{"channel":"pres:z","subscribers":1}]}`)
	channels("?prefix=nothing", `{"channels":[]}`)
	b.call(2, `{"id":2,"op":"unsubscribe","channel":"live:a"}`)
	channels("?prefix=live:", `{"channels":[{"channel":"live:a","subscribers":1},{"channel":"live:b","subscribers":2}]}`)
	c.Close()
	eventually(t, pumpWait, "the closed connection to leave its channels", func() bool {
		r := post(t, "GET", s.URL+"/api/channels", "", "", nil)
		return r.Body == `{"channels":[{"channel":"live:a","subscribers":1},{"channel":"live:b","subscribers":1},{"channel":"plain","subscribers":1}]}`+"\n"
	})
}

func TestInfoAPI(t *testing.T) {
	s := startServer(t)
	a, b := dial(t, s.WS, nil), dial(t, s.WS, nil)
	subscribeReply(t, a, 1, "x", "")
	subscribeReply(t, a, 2, "y", "")
	subscribeReply(t, b, 1, "x", "")
	publishJSON(t, s, "x", "1")
	publishJSON(t, s, "x", "2")
	publishJSON(t, s, "y", "3")
	for range 3 {
		a.next()
	}
	b.next()
	b.next()
	type info struct {
		Version        string  `json:"version"`
		Broker         string  `json:"broker"`
		UptimeSeconds  float64 `json:"uptime_seconds"`
		Connections    int64   `json:"connections"`
		Subscriptions  int64   `json:"subscriptions"`
		Channels       int64   `json:"channels"`
		Published      uint64  `json:"messages_published"`
		Delivered      uint64  `json:"messages_delivered"`
		QueueOverflows uint64  `json:"queue_overflows"`
		Goroutines     int     `json:"goroutines"`
	}
	var got info
	getJSON(t, s.URL+"/api/info", &got)
	if got.Version == "" || got.Broker != "memory" || got.UptimeSeconds < 0 || got.UptimeSeconds > 600 || got.Goroutines <= 0 {
		t.Fatalf("info: %+v", got)
	}
	want := info{Version: got.Version, Broker: "memory", UptimeSeconds: got.UptimeSeconds, Goroutines: got.Goroutines,
		Connections: 2, Subscriptions: 3, Channels: 2, Published: 3, Delivered: 5}
	if got != want {
		t.Fatalf("info:\ngot  %+v\nwant %+v", got, want)
	}
	a.Close()
	eventually(t, pumpWait, "the closed connection to leave the figures", func() bool {
		var now info
		getJSON(t, s.URL+"/api/info", &now)
		return now.Connections == 1 && now.Subscriptions == 1 && now.Channels == 1 && now.UptimeSeconds >= got.UptimeSeconds
	})
}

func TestHistoryAndPresenceAPIErrors(t *testing.T) {
	s := nsServer(t, "--api-key", "k3y")
	key := http.Header{"Authorization": {"Bearer k3y"}}
	for _, tt := range []struct {
		method, path string
		header       http.Header
		status       int
		code         string
	}{
		{"GET", "/api/history/small:x", nil, 401, "unauthorized"},
		{"GET", "/api/presence/pres:x", nil, 401, "unauthorized"},
		{"GET", "/api/presence_stats/pres:x", nil, 401, "unauthorized"},
		{"GET", "/api/channels", nil, 401, "unauthorized"},
		{"GET", "/api/info", http.Header{"Authorization": {"Bearer wrong"}}, 401, "unauthorized"},
		{"GET", "/api/history/small:x", key, 200, ""},
		{"GET", "/api/presence/pres:x", key, 200, ""},
		{"GET", "/api/presence_stats/pres:x", key, 200, ""},
		{"GET", "/api/channels", key, 200, ""},
		{"GET", "/api/info", key, 200, ""},
		{"GET", "/api/history/ghost:x", key, 404, "not_found"},
		{"GET", "/api/presence/ghost:x", key, 404, "not_found"},
		{"GET", "/api/presence_stats/ghost:x", key, 404, "not_found"},
		{"GET", "/api/history/quiet:x", key, 404, "not_found"},  // history off
		{"GET", "/api/history/plain", key, 404, "not_found"},    // off in the default namespace
		{"GET", "/api/presence/small:x", key, 404, "not_found"}, // presence off
		{"GET", "/api/presence_stats/plain", key, 404, "not_found"},
		{"GET", "/api/history/bad%20name", key, 400, "bad_request"},
		{"GET", "/api/presence/bad%20name", key, 400, "bad_request"},
		{"POST", "/api/history/small:x", key, 405, "method_not_allowed"},
		{"DELETE", "/api/presence/pres:x", key, 405, "method_not_allowed"},
		{"PUT", "/api/presence_stats/pres:x", key, 405, "method_not_allowed"},
		{"POST", "/api/channels", key, 405, "method_not_allowed"},
		{"POST", "/api/info", key, 405, "method_not_allowed"},
	} {
		r := post(t, tt.method, s.URL+tt.path, "", "", tt.header)
		if r.Status != tt.status || r.errorCode() != tt.code || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s, want %d %s", tt.method, tt.path, r.Status, strings.TrimSpace(r.Body), tt.status, tt.code)
		}
		if tt.status == 405 && r.Header.Get("Allow") != "GET" {
			t.Errorf("%s %s: Allow %q, want GET", tt.method, tt.path, r.Header.Get("Allow"))
		}
	}
}

func TestNamespaceOptionsValidation(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"namespaces: [{name: a, history_size: -1}]", "namespaces[a]: history_size must be 0-10000, not -1"},
		{"namespaces: [{name: a, history_size: 10001}]", "namespaces[a]: history_size must be 0-10000, not 10001"},
		{"namespaces: [{name: a, history_size: 5, history_ttl: -1s}]", "namespaces[a]: history_ttl must not be negative"},
		{"default_namespace: {history_size: 20000}", "default_namespace: history_size must be 0-10000, not 20000"},
		{"namespaces: [{name: a, history_ttl: soon}]", "cannot unmarshal"},
		{"namespaces: [{name: a, presence: maybe}]", "cannot unmarshal"},
		{"namespaces: [{name: a, histroy_size: 5}]", "field histroy_size not found"},
		{"namespaces: [{name: 'a:b'}]", `"a:b" is not a valid namespace name`},
		{"namespaces: [{name: a}, {name: a}]", `"a" appears twice`},
		{"namespaces: [{history_size: 5}]", "namespaces[0]: missing name"},
	} {
		var stderr strings.Builder
		err := run(context.Background(), []string{"wspush", "serve", "--addr", "127.0.0.1:0", "--config", writeConfig(t, tt.yaml)}, func(string) string { return "" }, strings.NewReader(""), io.Discard, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.yaml, err, tt.want)
		}
	}
	// history_ttl defaults to 10m where history_size is set.
	cfg, err := loadConfig([]string{"--config", writeConfig(t, "default_namespace: {history_size: 5}\nnamespaces: [{name: a, history_size: 1}, {name: b, history_size: 1, history_ttl: 1s}, {name: c}]")}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := []time.Duration{cfg.DefaultNamespace.HistoryTTL}
	for _, ns := range cfg.Namespaces {
		got = append(got, ns.HistoryTTL)
	}
	if want := []time.Duration{10 * time.Minute, 10 * time.Minute, time.Second, 0}; !slices.Equal(got, want) {
		t.Fatalf("history_ttl: %v, want %v", got, want)
	}
}

// publishMany publishes data(i) to ch for i in 1..n over one WebSocket, a
// few hundred commands in flight at a time, and returns the last position.
// The server must run with a client rate limit that allows it.
func publishMany(t *testing.T, s *server, ch string, n int, data func(i int) string) position {
	t.Helper()
	p := dial(t, s.WS, nil)
	defer p.Close()
	var last frame
	for i := 1; i <= n; i++ {
		p.send(fmt.Sprintf(`{"id":%d,"op":"publish","channel":%q,"data":%s}`, i, ch, data(i)))
		if i%250 == 0 || i == n {
			if last = p.reply(int64(i)); !last.OK {
				t.Fatalf("publish %d: %s", i, last.raw)
			}
		}
	}
	return position{last.Offset, last.Epoch}
}

// pageHistory reads the channel's history after since with the history op,
// page by page, until the top, and returns the offsets and data.
func pageHistory(t *testing.T, c *wsConn, ch string, since position) ([]uint64, []string) {
	t.Helper()
	var offs []uint64
	var data []string
	for id := int64(100); ; id++ {
		f := c.call(id, fmt.Sprintf(`{"id":%d,"op":"history","channel":%q,"since":%s}`, id, ch, since.since()))
		if !f.OK || f.Complete == nil || !*f.Complete {
			t.Fatalf("history since %+v: %.300s, want complete", since, f.raw)
		}
		for _, m := range f.Messages {
			offs = append(offs, m.Offset)
			data = append(data, string(m.Data))
		}
		if len(f.Messages) == 0 {
			t.Fatalf("history since %+v: no message, top %d", since, f.Offset)
		}
		since.Offset = f.Messages[len(f.Messages)-1].Offset
		if since.Offset == f.Offset {
			return offs, data
		}
	}
}

// TestRecoveryBeyondTheSendQueue: a recovery larger than half the send
// queue (4096 frames and 1 MiB by default) answers recovered:false instead
// of overflowing the queue, which would close the connection (4001), again
// at every reconnect; the client then pages through the history op.
func TestRecoveryBeyondTheSendQueue(t *testing.T) {
	s := nsServer(t, "--client-rate-limit", "100000", "--client-rate-burst", "100000")
	t.Run("messages", func(t *testing.T) {
		a := dial(t, s.WS, nil)
		subscribeReply(t, a, 1, "live:many", "")
		first := publishAt(t, s, "live:many", "1")
		a.Close()
		top := publishMany(t, s, "live:many", 3000, func(i int) string { return fmt.Sprint(i + 1) })
		b := dial(t, s.WS, nil)
		r := subscribeReply(t, b, 1, "live:many", `,"since":`+first.since())
		if r.Recovered == nil || *r.Recovered || r.Offset != top.Offset {
			t.Fatalf("recovery of 3000 messages: %s, want recovered false at %d", r.raw, top.Offset)
		}
		if f := b.call(2, `{"id":2,"op":"ping"}`); !f.OK {
			t.Fatalf("after the refused recovery: %s", f.raw)
		}
		offs, data := pageHistory(t, b, "live:many", first)
		if len(offs) != 3000 || offs[0] != 2 || offs[2999] != 3001 || data[0] != "2" || data[2999] != "3001" {
			t.Fatalf("paged %d messages, %v...%v", len(offs), offs[:1], offs[len(offs)-1:])
		}
		for i := range offs {
			if offs[i] != uint64(i+2) {
				t.Fatalf("paged offsets: %d at %d", offs[i], i)
			}
		}
		p := publishAt(t, s, "live:many", `"live"`)
		wantMessage(t, b.next(), "live:many", p.Offset, p.Epoch, `"live"`)
	})
	t.Run("bytes", func(t *testing.T) {
		big := jsonString(strings.Repeat("x", 20000))
		a := dial(t, s.WS, nil)
		subscribeReply(t, a, 1, "chat:big", "")
		first := a.call(2, `{"id":2,"op":"publish","channel":"chat:big","data":1}`)
		a.Close()
		start := position{first.Offset, first.Epoch}
		publishMany(t, s, "chat:big", 20, func(int) string { return big }) // 400 KB: fits
		b := dial(t, s.WS, nil)
		r := subscribeReply(t, b, 1, "chat:big", `,"since":`+start.since())
		if r.Recovered == nil || !*r.Recovered {
			t.Fatalf("recovery of 400 KB: %s, want recovered", r.raw)
		}
		for i := 2; i <= 21; i++ {
			if f := b.nextMessage(); f.Offset != uint64(i) {
				t.Fatalf("recovered %s, want offset %d", f.raw[:80], i)
			}
		}
		b.Close()
		top := publishMany(t, s, "chat:big", 40, func(int) string { return big }) // 1.2 MB since start
		c := dial(t, s.WS, nil)
		r = subscribeReply(t, c, 1, "chat:big", `,"since":`+start.since())
		if r.Recovered == nil || *r.Recovered || r.Offset != top.Offset {
			t.Fatalf("recovery of 1.2 MB: %s, want recovered false at %d", r.raw, top.Offset)
		}
		// A history reply holds what fits, the newest without since.
		f := c.call(2, `{"id":2,"op":"history","channel":"chat:big"}`)
		if !f.OK || len(f.Messages) == 0 || len(f.Messages) >= 61 || f.Messages[len(f.Messages)-1].Offset != top.Offset {
			t.Fatalf("history of 1.2 MB: %d messages, want the newest that fit", len(f.Messages))
		}
		offs, _ := pageHistory(t, c, "chat:big", start)
		if len(offs) != 60 || offs[0] != 2 || offs[59] != 61 {
			t.Fatalf("paged %d messages from %v", len(offs), offs[:1])
		}
		if f := c.call(3, `{"id":3,"op":"ping"}`); !f.OK {
			t.Fatalf("after big history replies: %s", f.raw)
		}
	})
}

// TestPresenceTooLargeForAReply: a presence list larger than a reply may
// be (half the send queue) is refused with too_large, and the connection
// stays; the count still answers. The list used to be sent whole, and
// the asking connection was closed as a slow consumer (4001).
func TestPresenceTooLargeForAReply(t *testing.T) {
	s := startServer(t, "--config", writeConfig(t, "namespaces:\n  - name: pres\n    presence: true\n"),
		"--queue-max-bytes", "16KiB", "--max-frame-size", "8KiB", "--max-publish-size", "8KiB", "--max-subscriptions", "16")
	const n = 400 // ~13 KB of client ids: over the 8 KiB a reply may hold
	for range n {
		dial(t, s.WS+"?channels=pres:x", nil)
	}
	c := dial(t, s.WS+"?channels=pres:x", nil)
	if f := c.call(1, `{"id":1,"op":"presence","channel":"pres:x"}`); f.OK || f.Error == nil || f.Error.Code != "too_large" {
		t.Fatalf("presence of %d clients: %s, want too_large", n+1, f.raw)
	}
	if f := c.call(2, `{"id":2,"op":"presence_stats","channel":"pres:x"}`); !f.OK || f.NumClients == nil || *f.NumClients != n+1 {
		t.Fatalf("presence_stats: %s, want %d clients", f.raw, n+1)
	}
}
