package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/client"
)

// End-to-end tests: each starts the real program (run, as main calls it)
// on 127.0.0.1:0 and talks to it over real sockets.

func TestDeliveryOrderAndIsolation(t *testing.T) {
	s := startServer(t)
	a1, a2, b := dial(t, s.WS, nil), dial(t, s.WS, nil), dial(t, s.WS, nil)
	a1.subscribe("room-a")
	a2.subscribe("room-a")
	b.subscribe("room-b")

	const n = 200
	for i := range n {
		publishJSON(t, s, "room-a", fmt.Sprint(i))
		if i%4 == 0 {
			publishJSON(t, s, "room-b", fmt.Sprintf(`{"b":%d}`, i))
		}
	}
	for _, c := range []*wsConn{a1, a2} {
		for i := range n {
			f := c.next()
			if f.Type != "message" || f.Channel != "room-a" || string(f.Data) != fmt.Sprint(i) {
				t.Fatalf("message %d: got %+v data %s, want room-a %d in order", i, f, f.Data, i)
			}
		}
	}
	for i := 0; i < n; i += 4 {
		f := b.next()
		if f.Channel != "room-b" || string(f.Data) != fmt.Sprintf(`{"b":%d}`, i) {
			t.Fatalf("room-b got %+v %s, want {\"b\":%d}: isolation or order broken", f, f.Data, i)
		}
	}
	// Nothing else is queued for b: its next frame is the reply to a ping.
	if f := b.call(1, `{"id":1,"op":"ping"}`); !f.OK {
		t.Fatalf("ping reply %+v", f)
	}
}

func TestPublishToSeveralChannels(t *testing.T) {
	s := startServer(t)
	a, b, c := dial(t, s.WS, nil), dial(t, s.WS, nil), dial(t, s.WS, nil)
	a.subscribe("x")
	b.subscribe("y")
	c.subscribe("z")
	r := post(t, "POST", s.URL+"/api/publish", "application/json", `{"channels":["x","y","x"],"data":{"k": [1, 2]}}`, nil)
	if r.Status != 200 {
		t.Fatalf("publish: %d %s", r.Status, r.Body)
	}
	for _, conn := range []*wsConn{a, b} {
		if f := conn.next(); f.Type != "message" || string(f.Data) != `{"k":[1,2]}` {
			t.Fatalf("got %+v %s", f, f.Data)
		}
	}
	// x was listed twice but is delivered once; z got nothing.
	if f := a.call(2, `{"id":2,"op":"ping"}`); !f.OK {
		t.Fatalf("x got more than one message: %+v", f)
	}
	if f := c.call(3, `{"id":3,"op":"ping"}`); !f.OK {
		t.Fatalf("z got a message: %+v", f)
	}
}

func TestRawPublish(t *testing.T) {
	s := startServer(t)
	c := dial(t, s.WS, nil)
	c.subscribe("chat")
	if r := post(t, "POST", s.URL+"/api/publish/chat", "", "hello", nil); r.Status != 200 {
		t.Fatalf("raw publish: %d %s", r.Status, r.Body)
	}
	if r := post(t, "POST", s.URL+"/api/publish/chat", "application/json", `{"n": 1}`, nil); r.Status != 200 {
		t.Fatalf("raw JSON publish: %d %s", r.Status, r.Body)
	}
	if r := post(t, "POST", s.URL+"/api/publish/chat", "text/plain; charset=utf-8", `{"n": 1}`, nil); r.Status != 200 {
		t.Fatalf("raw text publish: %d %s", r.Status, r.Body)
	}
	for _, want := range []string{`"hello"`, `{"n":1}`, jsonString(`{"n": 1}`)} {
		if f := c.next(); string(f.Data) != want {
			t.Fatalf("got %s, want %s", f.Data, want)
		}
	}
}

func TestBroadcastReachesEveryConnection(t *testing.T) {
	s := startServer(t)
	subscribed, bare := dial(t, s.WS, nil), dial(t, s.WS, nil)
	subscribed.subscribe("news")
	r := post(t, "POST", s.URL+"/api/broadcast", "application/json", `{"data":"maintenance at 5"}`, nil)
	if r.Status != 200 {
		t.Fatalf("broadcast: %d %s", r.Status, r.Body)
	}
	for _, c := range []*wsConn{subscribed, bare} {
		if f := c.next(); f.Type != "broadcast" || string(f.Data) != `"maintenance at 5"` {
			t.Fatalf("got %+v %s, want the broadcast", f, f.Data)
		}
	}
}

func TestAutoSubscribe(t *testing.T) {
	s := startServer(t)
	c := dial(t, s.WS+"?channels=a,b,a", nil)
	if got := strings.Join(c.Welcome.Channels, ","); got != "a,b" {
		t.Fatalf("welcome lists channels %q, want a,b", got)
	}
	publishJSON(t, s, "b", `"to b"`)
	publishJSON(t, s, "a", `"to a"`)
	if f := c.next(); f.Channel != "b" || string(f.Data) != `"to b"` {
		t.Fatalf("got %+v", f)
	}
	if f := c.next(); f.Channel != "a" {
		t.Fatalf("got %+v", f)
	}

	for _, q := range []string{"?channels=bad%20name", "?channels=nope:x"} {
		_, resp, err := websocket.DefaultDialer.Dial(s.WS+q, nil)
		if err == nil || resp == nil {
			t.Fatalf("%s: dial succeeded", q)
		}
		want := map[string]int{"?channels=bad%20name": 400, "?channels=nope:x": 404}[q]
		if resp.StatusCode != want {
			t.Fatalf("%s: HTTP %d, want %d", q, resp.StatusCode, want)
		}
	}
}

func TestClientPublishEchoesToSender(t *testing.T) {
	s := startServer(t)
	sender, other := dial(t, s.WS, nil), dial(t, s.WS, nil)
	sender.subscribe("chat")
	other.subscribe("chat")
	// The data is compacted, as the API's is: a push holds one line.
	sender.send("{\"id\":7,\"op\":\"publish\",\"channel\":\"chat\",\"data\":{\"user\": \"ann\",\n \"text\":\t\"hi\"}}")
	var gotMsg, gotReply bool
	for !gotMsg || !gotReply {
		f := sender.next()
		switch {
		case f.Type == "message" && string(f.Data) == `{"user":"ann","text":"hi"}`:
			gotMsg = true
		case f.Type == "reply" && f.ID != nil && *f.ID == 7 && f.OK:
			gotReply = true
		default:
			t.Fatalf("unexpected frame %+v", f)
		}
	}
	if f := other.next(); f.Type != "message" || string(f.Data) != `{"user":"ann","text":"hi"}` {
		t.Fatalf("other subscriber got %+v", f)
	}
}

func TestErrorRepliesKeepConnectionOpen(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "wspush.yaml")
	if err := os.WriteFile(cfg, []byte("namespaces:\n  - name: news\n    client_publish: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfg, "--max-subscriptions", "2")
	c := dial(t, s.WS, nil)
	tests := []struct {
		name, frame, code string
		id                int64
	}{
		{"malformed JSON", `{"id":1,"op":"subscribe",`, "bad_request", 1},
		{"not an object", `[1,2]`, "bad_request", -1},
		{"plain text", `hello`, "bad_request", -1},
		{"missing op", `{"id":2}`, "bad_request", 2},
		{"unknown op", `{"id":3,"op":"fly"}`, "unknown_op", 3},
		{"wrong id type", `{"id":"x","op":"ping"}`, "bad_request", -1},
		{"wrong channel type", `{"id":4,"op":"subscribe","channel":5}`, "bad_request", 4},
		{"missing channel", `{"id":5,"op":"subscribe"}`, "bad_request", 5},
		{"bad channel", `{"id":6,"op":"subscribe","channel":"no spaces"}`, "bad_request", 6},
		{"long channel", `{"id":7,"op":"subscribe","channel":"` + strings.Repeat("x", 256) + `"}`, "bad_request", 7},
		{"unknown namespace", `{"id":8,"op":"subscribe","channel":"ghost:1"}`, "not_found", 8},
		{"publish without data", `{"id":9,"op":"publish","channel":"chat"}`, "bad_request", 9},
		{"publish forbidden", `{"id":10,"op":"publish","channel":"news:1","data":1}`, "forbidden", 10},
		{"unsubscribe missing channel", `{"id":11,"op":"unsubscribe"}`, "bad_request", 11},
		{"unsubscribe bad channel", `{"id":12,"op":"unsubscribe","channel":"no spaces"}`, "bad_request", 12},
	}
	for _, tt := range tests {
		c.send(tt.frame)
		f := c.next()
		if f.Type != "reply" || f.OK || f.Error == nil || f.Error.Code != tt.code || f.Error.Message == "" {
			t.Fatalf("%s: got %+v, want error %s", tt.name, f, tt.code)
		}
		if (tt.id < 0) != (f.ID == nil) || (f.ID != nil && *f.ID != tt.id) {
			t.Fatalf("%s: reply id %v, want %d", tt.name, f.ID, tt.id)
		}
	}
	// Binary frames are not the protocol.
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if f := c.next(); f.OK || f.Error == nil || f.Error.Code != "bad_request" {
		t.Fatalf("binary frame: got %+v", f)
	}
	// Subscription limit.
	c.subscribe("one")
	c.subscribe("news:2")
	if f := c.call(12, `{"id":12,"op":"subscribe","channel":"three"}`); f.OK || f.Error.Code != "too_large" {
		t.Fatalf("third subscription: %+v", f.Error)
	}
	// Idempotent subscribe and unsubscribe.
	if f := c.call(13, `{"id":13,"op":"subscribe","channel":"one"}`); !f.OK {
		t.Fatalf("re-subscribe: %+v", f.Error)
	}
	if f := c.call(14, `{"id":14,"op":"unsubscribe","channel":"never"}`); !f.OK {
		t.Fatalf("unsubscribe unknown: %+v", f.Error)
	}
	// The connection still works, and the subscriptions took effect.
	publishJSON(t, s, "news:2", `"ok"`)
	if f := c.next(); f.Channel != "news:2" || string(f.Data) != `"ok"` {
		t.Fatalf("after errors: %+v", f)
	}
	if f := c.call(15, `{"id":15,"op":"unsubscribe","channel":"news:2"}`); !f.OK {
		t.Fatalf("unsubscribe: %+v", f.Error)
	}
	publishJSON(t, s, "news:2", `"gone"`)
	if f := c.call(16, `{"id":16,"op":"ping"}`); !f.OK {
		t.Fatalf("message after unsubscribe: %+v", f)
	}
}

// TestNoPushAfterUnsubscribeReply unsubscribes while the channel is being
// published to without pause: its pushes arrive before the unsubscribe's
// reply and none after it, in each of several rounds.
func TestNoPushAfterUnsubscribeReply(t *testing.T) {
	s := startServer(t)
	api := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer api.CloseIdleConnections()
	for round := range 50 {
		ch, marker := fmt.Sprintf("live%d", round), fmt.Sprintf("marker%d", round)
		c := dial(t, s.WS, nil)
		c.subscribe(ch)
		c.subscribe(marker)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		stopPublishers := sync.OnceFunc(func() { close(stop); wg.Wait() })
		defer stopPublishers() // also when the test fails, before it ends
		// Four publishers, so that publishes are under way at any moment.
		for range 4 {
			wg.Go(func() {
				body := `{"channel":"` + ch + `","data":1}`
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := api.Post(s.URL+"/api/publish", "application/json", strings.NewReader(body))
					if err != nil {
						t.Errorf("publish: %v", err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		if f := c.next(); f.Type != "message" || f.Channel != ch {
			t.Fatalf("first frame %+v, want a message of %s", f, ch)
		}
		c.send(`{"id":77,"op":"unsubscribe","channel":"` + ch + `"}`)
		for f := c.next(); f.Type != "reply" || f.ID == nil || *f.ID != 77; f = c.next() {
			if f.Type != "message" || f.Channel != ch {
				t.Fatalf("before the unsubscribe reply: %+v", f)
			}
		}
		// Publishing goes on a little past the reply (a ping's round
		// trip); then a marker ends what there is to read.
		c.send(`{"id":78,"op":"ping"}`)
		for f := c.next(); f.Type != "reply" || f.ID == nil || *f.ID != 78; f = c.next() {
			t.Fatalf("round %d: after the unsubscribe reply: %+v", round, f)
		}
		stopPublishers()
		publishJSON(t, s, marker, `"end"`)
		for f := c.next(); f.Channel != marker; f = c.next() {
			t.Fatalf("round %d: after the unsubscribe reply: %+v", round, f)
		}
	}
}

func TestOversizedFrameCloses1009(t *testing.T) {
	s := startServer(t, "--max-frame-size", "1KiB")
	c, other := dial(t, s.WS, nil), dial(t, s.WS, nil)
	other.subscribe("calm")
	c.send(`{"op":"publish","channel":"x","data":"` + strings.Repeat("a", 2000) + `"}`)
	c.expectClose(1009)
	publishJSON(t, s, "calm", `1`)
	if f := other.next(); string(f.Data) != "1" {
		t.Fatalf("other client: %+v", f)
	}
}

func TestMalformedFloodCloses4002(t *testing.T) {
	s := startServer(t)
	c := dial(t, s.WS, nil)
	for range 30 {
		if err := c.WriteMessage(websocket.TextMessage, []byte("garbage")); err != nil {
			break // closed already
		}
	}
	c.expectClose(4002)

	// Exactly as documented: 19 in a row are answered, the 20th closes
	// (it used to take a 21st).
	c = dial(t, s.WS, nil)
	for range 19 {
		c.send("garbage")
	}
	if r := c.call(1, `{"id":1,"op":"ping"}`); !r.OK {
		t.Fatalf("a ping after 19 malformed frames: %s", r.raw)
	}
	for range 20 {
		c.send("garbage")
	}
	replies := 0
	for {
		f, err := c.read(5 * time.Second)
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 4002 {
				t.Fatalf("after %d error replies: %v, want a close with 4002", replies, err)
			}
			break
		}
		if f.Type != "reply" || f.OK {
			t.Fatalf("frame %s, want error replies, then the close", f.raw)
		}
		replies++
	}
	if replies != 19 {
		t.Fatalf("%d error replies before the close, want 19: the 20th malformed frame closes", replies)
	}
}

func TestRateLimit(t *testing.T) {
	s := startServer(t, "--client-rate-limit", "5", "--client-rate-burst", "5")
	c := dial(t, s.WS, nil)
	for i := range 5 {
		c.send(fmt.Sprintf(`{"id":%d,"op":"ping"}`, i))
	}
	c.send(`{"id":99,"op":"ping"}`)
	for {
		f := c.next()
		if f.Type == "reply" && !f.OK {
			if f.Error.Code != "rate_limited" || f.ID == nil || *f.ID != 99 {
				t.Fatalf("got %+v (id %v), want rate_limited for id 99", f.Error, f.ID)
			}
			break
		}
	}
	for range 20 {
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"op":"ping"}`)); err != nil {
			break
		}
	}
	c.expectClose(4008)
}

// TestPingRateLimit: WebSocket pings spend the command budget. Each gets
// its pong, but a client that keeps pinging a whole burst past its limit
// is closed with 4008, as for commands.
func TestPingRateLimit(t *testing.T) {
	s := startServer(t, "--client-rate-limit", "0.01", "--client-rate-burst", "5")
	c := dial(t, s.WS, nil)
	var pongs atomic.Int32
	c.SetPongHandler(func(string) error { pongs.Add(1); return nil })
	_ = c.SetReadDeadline(time.Time{}) // no deadline from the welcome: the select below bounds the wait
	ended := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				ended <- err
				return
			}
		}
	}()
	ping := func() error { return c.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)) }
	for range 5 {
		if err := ping(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "5 pongs", func() bool { return pongs.Load() == 5 })
	// 5 more put the client a burst in debt, still answered; the 11th closes.
	for range 20 {
		if ping() != nil {
			break
		}
	}
	var ce *websocket.CloseError
	select {
	case err := <-ended:
		if !errors.As(err, &ce) || ce.Code != 4008 || !strings.Contains(ce.Text, "pings") {
			t.Fatalf("connection ended with %v, want 4008 for too many pings", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a ping flood was not closed")
	}
	if n := pongs.Load(); n != 10 {
		t.Fatalf("%d pongs, want 10: every ping before the one that closed", n)
	}
}

func TestAPIKey(t *testing.T) {
	s := startServer(t, "--api-key", "s3cret")
	c := dial(t, s.WS, nil)
	c.subscribe("k")
	body := `{"channel":"k","data":1}`
	for _, tt := range []struct {
		auth string
		want int
	}{
		{"", 401}, {"Bearer wrong", 401}, {"Basic czNjcmV0", 401}, {"Bearers3cret", 401}, {"Bearer", 401},
		{"Bearer s3cret", 200}, {"bearer s3cret", 200}, {"BEARER  s3cret", 200}, // the scheme is case-insensitive
	} {
		h := http.Header{}
		if tt.auth != "" {
			h.Set("Authorization", tt.auth)
		}
		r := post(t, "POST", s.URL+"/api/publish", "application/json", body, h)
		if r.Status != tt.want {
			t.Fatalf("Authorization %q: %d %s, want %d", tt.auth, r.Status, r.Body, tt.want)
		}
		if tt.want == 401 && (r.errorCode() != "unauthorized" || r.Header.Get("WWW-Authenticate") == "") {
			t.Fatalf("401 answer: %s %v", r.Body, r.Header)
		}
	}
	if f := c.next(); string(f.Data) != "1" {
		t.Fatalf("authorized publish not delivered: %+v", f)
	}

	// The key may come from the environment too.
	env := startServerEnv(t, func(k string) string {
		if k == "WSPUSH_API_KEY" {
			return "from-env"
		}
		return ""
	})
	if r := post(t, "POST", env.URL+"/api/publish", "application/json", body, nil); r.Status != 401 {
		t.Fatalf("no key with WSPUSH_API_KEY set: %d", r.Status)
	}
	if r := post(t, "POST", env.URL+"/api/publish", "application/json", body, http.Header{"Authorization": {"Bearer from-env"}}); r.Status != 200 {
		t.Fatalf("key from env: %d %s", r.Status, r.Body)
	}
}

func TestNoAPIKeyAnswersLoopbackOnly(t *testing.T) {
	ip := nonLoopbackIP(t)
	s := startServer(t, "--addr", net.JoinHostPort(ip, "0"))
	if !s.logs.Contains("no API key set") {
		t.Fatalf("the server did not warn about the missing key:\n%s", s.logs)
	}
	// From a non-loopback address: refused.
	r := post(t, "POST", s.URL+"/api/publish", "application/json", `{"channel":"k","data":1}`, nil)
	if r.Status != 403 || r.errorCode() != "forbidden" {
		t.Fatalf("non-loopback caller without a key: %d %s, want 403", r.Status, r.Body)
	}
	// Health stays open to everyone.
	if r := post(t, "GET", s.URL+"/healthz", "", "", nil); r.Status != 200 {
		t.Fatalf("healthz: %d", r.Status)
	}
	// From loopback (another server on 127.0.0.1): accepted.
	l := startServer(t)
	if r := post(t, "POST", l.URL+"/api/publish", "application/json", `{"channel":"k","data":1}`, nil); r.Status != 200 {
		t.Fatalf("loopback caller: %d %s", r.Status, r.Body)
	}
}

// nonLoopbackIP returns an address of this host that is not loopback, or
// skips the test.
func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("this host has no non-loopback IPv4 address")
	return ""
}

func TestAPIBadInput(t *testing.T) {
	s := startServer(t, "--max-publish-size", "1KiB")
	c := dial(t, s.WS, nil)
	c.subscribe("chat")
	big := `{"channel":"chat","data":"` + strings.Repeat("x", 2000) + `"}`
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
	}{
		{"wrong method", "GET", "/api/publish", "", "", 405, "method_not_allowed"},
		{"wrong method raw", "PUT", "/api/publish/chat", "", "x", 405, "method_not_allowed"},
		{"wrong method broadcast", "DELETE", "/api/broadcast", "", "", 405, "method_not_allowed"},
		{"no content type", "POST", "/api/publish", "", `{"channel":"chat","data":1}`, 415, "unsupported_media_type"},
		{"form content type", "POST", "/api/publish", "application/x-www-form-urlencoded", `a=b`, 415, "unsupported_media_type"},
		{"too large", "POST", "/api/publish", "application/json", big, 413, "too_large"},
		{"too large raw", "POST", "/api/publish/chat", "", strings.Repeat("x", 2000), 413, "too_large"},
		{"malformed JSON", "POST", "/api/publish", "application/json", `{"channel":`, 400, "bad_request"},
		{"two values", "POST", "/api/publish", "application/json", `{"channel":"chat","data":1} {}`, 400, "bad_request"},
		{"unknown field", "POST", "/api/publish", "application/json", `{"chanel":"chat","data":1}`, 400, "bad_request"},
		{"missing channel", "POST", "/api/publish", "application/json", `{"data":1}`, 400, "bad_request"},
		{"missing data", "POST", "/api/publish", "application/json", `{"channel":"chat"}`, 400, "bad_request"},
		{"both channel forms", "POST", "/api/publish", "application/json", `{"channel":"a","channels":["b"],"data":1}`, 400, "bad_request"},
		{"bad channel", "POST", "/api/publish", "application/json", `{"channel":"a/b","data":1}`, 400, "bad_request"},
		{"bad channel in list", "POST", "/api/publish", "application/json", `{"channels":["ok","no way"],"data":1}`, 400, "bad_request"},
		{"unknown namespace", "POST", "/api/publish", "application/json", `{"channel":"ghost:1","data":1}`, 404, "not_found"},
		{"raw bad JSON", "POST", "/api/publish/chat", "application/json", `{nope`, 400, "bad_request"},
		{"raw not UTF-8", "POST", "/api/publish/chat", "text/plain", "\xff\xfe", 400, "bad_request"},
		{"JSON string not UTF-8", "POST", "/api/publish", "application/json", "{\"channel\":\"chat\",\"data\":\"\xff\"}", 400, "bad_request"},
		{"raw JSON not UTF-8", "POST", "/api/publish/chat", "application/json", "\"\xc3\"", 400, "bad_request"},
		{"raw bad channel", "POST", "/api/publish/bad%20name", "", "x", 400, "bad_request"},
		{"broadcast missing data", "POST", "/api/broadcast", "application/json", `{}`, 400, "bad_request"},
		{"unknown route", "POST", "/api/nothing", "application/json", `{}`, 404, "not_found"},
	}
	for _, tt := range tests {
		r := post(t, tt.method, s.URL+tt.path, tt.ctype, tt.body, nil)
		if r.Status != tt.status || r.errorCode() != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.name, r.Status, strings.TrimSpace(r.Body), tt.status, tt.code)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q, want application/json", tt.name, ct)
		}
		if tt.status == 405 && r.Header.Get("Allow") == "" {
			t.Errorf("%s: 405 without Allow", tt.name)
		}
	}
	// Nothing above reached the subscriber, and a good publish still does.
	publishJSON(t, s, "chat", `"good"`)
	if f := c.next(); f.Type != "message" || string(f.Data) != `"good"` {
		t.Fatalf("after bad input the subscriber got %+v %s", f, f.Data)
	}
}

func TestOriginCheck(t *testing.T) {
	s := startServer(t, "--allowed-origins", "https://app.example.com,https://*.example.org")
	for _, tt := range []struct {
		origin string
		ok     bool
	}{
		{"", true},                        // not a browser
		{"http://" + s.Addr, true},        // same origin
		{"https://app.example.com", true}, // listed
		{"https://a.example.org", true},   // wildcard
		{"https://evil.example", false},
		{"http://app.example.com", false}, // scheme differs
		{"https://example.org", false},    // wildcard needs a subdomain
	} {
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		c, resp, err := websocket.DefaultDialer.Dial(s.WS, h)
		if tt.ok {
			if err != nil {
				t.Fatalf("origin %q refused: %v", tt.origin, err)
			}
			c.Close()
			continue
		}
		if err == nil {
			c.Close()
			t.Fatalf("origin %q accepted", tt.origin)
		}
		if resp == nil || resp.StatusCode != 403 {
			t.Fatalf("origin %q: %v, want HTTP 403", tt.origin, err)
		}
	}
	// "*" must be said explicitly, and then accepts any origin.
	any := startServer(t, "--allowed-origins", "*")
	c, _, err := websocket.DefaultDialer.Dial(any.WS, http.Header{"Origin": {"https://anything.test"}})
	if err != nil {
		t.Fatalf("--allowed-origins '*': %v", err)
	}
	c.Close()
}

func TestHeartbeatClosesSilentClient(t *testing.T) {
	s := startServer(t, "--ping-interval", "100ms", "--pong-timeout", "600ms")
	silent := dial(t, s.WS, nil)
	silent.SetPingHandler(func(string) error { return nil }) // never answers
	healthy := dial(t, s.WS+"?channels=beat", nil)
	// gorilla answers pings while it reads: the healthy client reads all along.
	frames := make(chan frame, 16)
	go func() {
		defer close(frames)
		for {
			f, err := healthy.read(30 * time.Second)
			if err != nil {
				return
			}
			frames <- f
		}
	}()

	start := time.Now()
	silent.expectClose(4010)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("closed after %v, before the pong timeout", d)
	}
	// Well past the timeout, the healthy client is still subscribed.
	eventually(t, 5*time.Second, "twice the pong timeout", func() bool { return time.Since(start) > 1200*time.Millisecond })
	publishJSON(t, s, "beat", `"alive"`)
	if f, ok := <-frames; !ok || string(f.Data) != `"alive"` {
		t.Fatalf("healthy client: %+v (open: %v)", f, ok)
	}
	eventually(t, 5*time.Second, "close code 4010 counted once", func() bool {
		return metric(t, s, `wspush_connections_closed_total{code="4010"}`) == 1
	})
	healthy.Close()
}

func TestSlowConsumerClosedOthersUnaffected(t *testing.T) {
	s := startServer(t, "--queue-max-messages", "50", "--queue-max-bytes", "256KiB")
	slow, _, err := smallBufferDialer.Dial(s.WS+"?channels=firehose", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast := dial(t, s.WS+"?channels=firehose", nil)

	// The fast client reads as messages come; the slow one reads nothing
	// until the server has given up on it.
	const n = 600
	payload := jsonString(strings.Repeat("p", 16<<10))
	fastDone := make(chan error, 1)
	go func() {
		for i := range n {
			f, err := fast.read(15 * time.Second)
			if err != nil {
				fastDone <- fmt.Errorf("fast client after %d messages: %v", i, err)
				return
			}
			if string(f.Data) != fmt.Sprintf(`{"i":%d,"p":%s}`, i, payload) {
				fastDone <- fmt.Errorf("fast client message %d out of order or wrong", i)
				return
			}
		}
		fastDone <- nil
	}()
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range n {
			publishJSON(t, s, "firehose", fmt.Sprintf(`{"i":%d,"p":%s}`, i, payload))
		}
	}()
	eventually(t, 20*time.Second, "an overflow counted", func() bool {
		return metric(t, s, "wspush_queue_overflows_total") >= 1
	})
	// Reading now, the slow client finds the close code 4001 after the
	// frames that were on their way.
	_ = slow.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, _, err := slow.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, 4001) {
			t.Fatalf("slow client ended with %v, want close 4001", err)
		}
		break
	}
	<-published
	if err := <-fastDone; err != nil {
		t.Fatal(err)
	}
	if got := metric(t, s, "wspush_queue_overflows_total"); got != 1 {
		t.Fatalf("overflows = %v, want 1 (only the slow client)", got)
	}
}

func TestGracefulShutdown(t *testing.T) {
	s := startServer(t)
	c1, c2 := dial(t, s.WS, nil), dial(t, s.WS+"?channels=last", nil)

	// An API request in flight when the signal comes still completes.
	body, bodyW := newSlowBody()
	reqDone := make(chan apiResponse, 1)
	go func() {
		req, _ := http.NewRequest("POST", s.URL+"/api/publish/last", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			reqDone <- apiResponse{Status: -1, Body: err.Error()}
			return
		}
		defer resp.Body.Close()
		reqDone <- apiResponse{Status: resp.StatusCode}
	}()
	bodyW.write("half of ")
	eventually(t, 5*time.Second, "the request to reach the server", func() bool { return body.read() > 0 })

	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- s.Stop(t) }()
	eventually(t, 5*time.Second, "readyz to stop answering 200", func() bool {
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			return true
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	bodyW.write("the message")
	bodyW.close()
	if r := <-reqDone; r.Status != 200 {
		t.Fatalf("in-flight request: %d %s", r.Status, r.Body)
	}
	// The publish acknowledged during the shutdown is delivered: the
	// WebSockets close (1001) only after the API's requests are done.
	if f := c2.nextMessage(); f.Type != "message" || string(f.Data) != `"half of the message"` {
		t.Fatalf("subscriber got %s, want the message acknowledged during the shutdown", f.raw)
	}
	c2.expectClose(1001)
	c1.expectClose(1001)
	if err := <-stopped; err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if _, _, err := websocket.DefaultDialer.Dial(s.WS, nil); err == nil {
		t.Fatal("connected after shutdown")
	}
}

// slowBody is a request body the test writes piece by piece.
type slowBody struct {
	mu   sync.Mutex
	cond *sync.Cond
	buf  []byte
	done bool
	n    int
}

type slowBodyWriter struct{ b *slowBody }

func newSlowBody() (*slowBody, slowBodyWriter) {
	b := &slowBody{}
	b.cond = sync.NewCond(&b.mu)
	return b, slowBodyWriter{b}
}

func (b *slowBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.buf) == 0 && !b.done {
		b.cond.Wait()
	}
	if len(b.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	b.n += n
	return n, nil
}

func (b *slowBody) read() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

func (w slowBodyWriter) write(s string) {
	w.b.mu.Lock()
	w.b.buf = append(w.b.buf, s...)
	w.b.mu.Unlock()
	w.b.cond.Broadcast()
}

func (w slowBodyWriter) close() {
	w.b.mu.Lock()
	w.b.done = true
	w.b.mu.Unlock()
	w.b.cond.Broadcast()
}

func TestMetricsCount(t *testing.T) {
	s := startServer(t)
	a, b := dial(t, s.WS, nil), dial(t, s.WS, nil)
	a.subscribe("m1")
	a.subscribe("m2")
	b.subscribe("m1")
	publishJSON(t, s, "m1", "1")
	publishJSON(t, s, "m2", "2")
	a.next()
	a.next()
	b.next()
	want := map[string]float64{
		"wspush_connections":                2,
		"wspush_connections_accepted_total": 2,
		"wspush_subscriptions":              3,
		"wspush_channels":                   2,
		"wspush_messages_published_total":   2,
		"wspush_messages_delivered_total":   3,
	}
	for name, v := range want {
		if got := metric(t, s, name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	a.Close()
	eventually(t, 5*time.Second, "the closed connection to leave the gauges", func() bool {
		return metric(t, s, "wspush_connections") == 1 && metric(t, s, "wspush_subscriptions") == 1 && metric(t, s, "wspush_channels") == 1
	})
}

func TestPublishCommand(t *testing.T) {
	s := startServer(t, "--api-key", "k1")
	c := dial(t, s.WS+"?channels=cli,other", nil)
	var out strings.Builder
	ctx := context.Background()
	args := []string{"wspush", "publish", "--server", s.URL, "--api-key", "k1", "--channel", "cli", "hello"}
	if err := run(ctx, args, func(string) string { return "" }, strings.NewReader(""), &out, &out); err != nil {
		t.Fatalf("publish: %v (%s)", err, out.String())
	}
	if f := c.next(); f.Channel != "cli" || string(f.Data) != `"hello"` {
		t.Fatalf("got %+v %s", f, f.Data)
	}
	// JSON from stdin, key from the environment, two channels.
	env := func(k string) string { return map[string]string{"WSPUSH_API_KEY": "k1", "WSPUSH_SERVER": s.URL}[k] }
	err := run(ctx, []string{"wspush", "publish", "--channel", "cli,other", "-"}, env, strings.NewReader(`{"a": 1}`+"\n"), &out, &out)
	if err != nil {
		t.Fatalf("publish from stdin: %v", err)
	}
	for range 2 {
		if f := c.next(); string(f.Data) != `{"a":1}` {
			t.Fatalf("got %s", f.Data)
		}
	}
	// A wrong key is an error naming the cause.
	err = run(ctx, []string{"wspush", "publish", "--server", s.URL, "--api-key", "nope", "--channel", "cli", "x"}, func(string) string { return "" }, strings.NewReader(""), &out, &out)
	if ce, ok := err.(*client.APIError); !ok || ce.Status != 401 || ce.Code != "unauthorized" {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestHealthAndPages(t *testing.T) {
	s := startServer(t)
	for path, want := range map[string]string{"/healthz": `"status":"ok"`, "/readyz": `"status":"ready"`, "/": "<", "/metrics": "wspush_connections"} {
		r := post(t, "GET", s.URL+path, "", "", nil)
		if r.Status != 200 || !strings.Contains(r.Body, want) {
			t.Errorf("GET %s: %d %.100s", path, r.Status, r.Body)
		}
	}
	if r := post(t, "POST", s.URL+"/", "", "", nil); r.Status != 405 {
		t.Errorf("POST /: %d", r.Status)
	}
	// A plain GET of /ws is not a WebSocket handshake.
	if r := post(t, "GET", s.URL+"/ws", "", "", nil); r.Status != 400 || r.errorCode() != "bad_request" {
		t.Errorf("GET /ws without upgrade: %d %s", r.Status, r.Body)
	}
}

func TestShutdownDoesNotWaitForSilentConnections(t *testing.T) {
	s := startServer(t)
	// A browser keeps a spare connection open without sending a request.
	idle, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	c := dial(t, s.WS, nil) // and the HTTP server has seen the spare one
	c.subscribe("x")
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(t) }()
	c.expectClose(1001) // reading, so that the close handshake completes
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %v with a silent connection open", d)
	}
}

// The publish routes are answered from the epoll loop (package h1) and
// everything else by net/http, on the same port and, for a keep-alive
// client, the same connection; both paths give the same answers.
func TestPublishAPIDirectPath(t *testing.T) {
	s := startServer(t, "--api-key", "k", "--max-publish-size", "1024")
	c := dial(t, s.WS, nil)
	c.subscribe("direct")
	auth := http.Header{"Authorization": {"Bearer k"}}

	r := post(t, "POST", s.URL+"/api/publish", "application/json", `{"channel":"direct","data":{"n":1}}`, auth)
	if r.Status != 200 || r.Body != "{\"ok\":true}\n" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Date") == "" {
		t.Fatalf("publish: %d %q %v", r.Status, r.Body, r.Header)
	}
	if r := post(t, "POST", s.URL+"/api/publish/direct", "text/plain", "two", auth); r.Status != 200 {
		t.Fatalf("raw publish: %d %s", r.Status, r.Body)
	}
	if r := post(t, "POST", s.URL+"/api/broadcast", "application/json", `{"data":3}`, auth); r.Status != 200 {
		t.Fatalf("broadcast: %d %s", r.Status, r.Body)
	}
	for _, want := range []string{`{"n":1}`, `"two"`, `3`} {
		if f := c.nextMessage(); string(f.Data) != want {
			t.Fatalf("got %s, want %s", f.Data, want)
		}
	}
	// Errors on the direct path, in the API's own words.
	if r := post(t, "POST", s.URL+"/api/publish", "application/json", `{"channel":"direct","data":1}`, http.Header{"Authorization": {"Bearer nope"}}); r.Status != 401 || r.errorCode() != "unauthorized" || r.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("wrong key: %d %s %v", r.Status, r.Body, r.Header)
	}
	if r := post(t, "POST", s.URL+"/api/publish", "application/json", `{"channel":`, auth); r.Status != 400 || r.errorCode() != "bad_request" {
		t.Fatalf("malformed: %d %s", r.Status, r.Body)
	}
	if r := post(t, "POST", s.URL+"/api/publish/bad%20name", "text/plain", "x", auth); r.Status != 400 {
		t.Fatalf("escaped channel (net/http's path): %d %s", r.Status, r.Body)
	}
	if got := metric(t, s, "wspush_api_requests_direct_total"); got != 5 {
		t.Fatalf("wspush_api_requests_direct_total %v, want 5", got)
	}
	// A body over the limit goes to net/http, which answers the same 413.
	if r := post(t, "POST", s.URL+"/api/publish", "application/json", `{"channel":"direct","data":"`+strings.Repeat("x", 2000)+`"}`, auth); r.Status != 413 || r.errorCode() != "too_large" {
		t.Fatalf("too large: %d %s", r.Status, r.Body)
	}
	// Nothing else reached the subscriber.
	c.send(`{"id":1,"op":"ping"}`)
	if f := c.reply(1); f.Error != nil {
		t.Fatalf("ping: %+v", f)
	}
}

// TestDeeplyNestedDataRefused: data nested deeper than MaxDataDepth is
// refused with bad_request, over the API and from a client; at the limit
// it goes through. It used to be taken up to encoding/json's 10,000
// levels, and a history reply, which wraps it three levels deeper, could
// then not be decoded by a Go client (the reply was dropped, the call
// hung).
func TestDeeplyNestedDataRefused(t *testing.T) {
	s := startServer(t)
	nested := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	r := post(t, "POST", s.URL+"/api/publish", "application/json", `{"channel":"deep","data":`+nested(wspush.MaxDataDepth+1)+`}`, nil)
	if r.Status != 400 || !strings.Contains(r.Body, "nested deeper") {
		t.Errorf("API publish of data %d deep: %d %s, want 400 bad_request", wspush.MaxDataDepth+1, r.Status, r.Body)
	}
	r = post(t, "POST", s.URL+"/api/publish", "application/json", `{"channel":"deep","data":`+nested(wspush.MaxDataDepth)+`}`, nil)
	if r.Status != 200 {
		t.Errorf("API publish of data %d deep: %d %s, want 200", wspush.MaxDataDepth, r.Status, r.Body)
	}
	c := dial(t, s.WS, nil)
	if f := c.call(1, `{"id":1,"op":"publish","channel":"deep","data":`+nested(wspush.MaxDataDepth+1)+`}`); f.OK || f.Error == nil || f.Error.Code != "bad_request" {
		t.Errorf("client publish of data %d deep: %s, want bad_request", wspush.MaxDataDepth+1, f.raw)
	}
	if f := c.call(2, `{"id":2,"op":"publish","channel":"deep","data":`+nested(wspush.MaxDataDepth)+`}`); !f.OK {
		t.Errorf("client publish of data %d deep: %s, want ok", wspush.MaxDataDepth, f.raw)
	}
	// The raw endpoint's JSON body is the data itself: the same limit.
	if r := post(t, "POST", s.URL+"/api/publish/deep", "application/json", nested(wspush.MaxDataDepth+1), nil); r.Status != 400 {
		t.Errorf("raw publish of data %d deep: %d %s, want 400", wspush.MaxDataDepth+1, r.Status, r.Body)
	}
	if r := post(t, "POST", s.URL+"/api/publish/deep", "application/json", nested(wspush.MaxDataDepth), nil); r.Status != 200 {
		t.Errorf("raw publish of data %d deep: %d %s, want 200", wspush.MaxDataDepth, r.Status, r.Body)
	}
}
