package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/wspush/wspush/internal/proxytest"
	"github.com/wspush/wspush/internal/redistest"
)

// Cluster tests: several wspush nodes, run in-process as main runs them,
// sharing one real redis-server.

// clusterConfig writes a config with namespace "chat" keeping history and
// presence, and returns its path.
func clusterConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wspush.yaml")
	cfg := "namespaces:\n  - name: chat\n    history_size: 1000\n    history_ttl: 10m\n    presence: true\n    client_publish: true\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startCluster starts n nodes on redis.
func startCluster(t *testing.T, redis *redistest.Server, n int, extra ...string) []*server {
	t.Helper()
	cfg := clusterConfig(t)
	nodes := make([]*server, n)
	for i := range nodes {
		args := append([]string{"--broker", "redis", "--redis-url", redis.URL, "--config", cfg}, extra...)
		nodes[i] = startServer(t, args...)
		waitReadyz(t, nodes[i], 200)
	}
	return nodes
}

// waitReadyz waits until GET /readyz answers status.
func waitReadyz(t *testing.T, s *server, status int) {
	t.Helper()
	eventually(t, 15*time.Second, fmt.Sprintf("%s/readyz to answer %d", s.URL, status), func() bool {
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == status
	})
}

func TestClusterFanOutOnceInOrder(t *testing.T) {
	redis := redistest.Start(t, redistest.Options{})
	nodes := startCluster(t, redis, 3)
	var subs []*wsConn
	for _, n := range nodes {
		for range 2 {
			c := dial(t, n.WS, nil)
			c.subscribe("chat:c")
			subs = append(subs, c)
		}
	}
	bare := dial(t, nodes[2].WS, nil) // for the broadcast
	const total = 30
	for i := range total {
		publishJSON(t, nodes[i%3], "chat:c", fmt.Sprint(i+1))
	}
	for si, c := range subs {
		for want := 1; want <= total; want++ {
			f := c.nextMessage()
			if f.Type != "message" || f.Offset != uint64(want) || string(f.Data) != fmt.Sprint(want) {
				t.Fatalf("subscriber %d: message %d is %+v (data %s): lost, duplicated or out of order", si, want, f, f.Data)
			}
		}
	}
	// Broadcast reaches every node.
	if r := post(t, "POST", nodes[0].URL+"/api/broadcast", "application/json", `{"data":"all nodes"}`, nil); r.Status != 200 {
		t.Fatalf("broadcast: %d %s", r.Status, r.Body)
	}
	for _, c := range append(subs, bare) {
		if f := c.nextMessage(); f.Type != "broadcast" || string(f.Data) != `"all nodes"` {
			t.Fatalf("broadcast: got %+v", f)
		}
	}
}

func TestClusterPresenceAndHistoryAgree(t *testing.T) {
	redis := redistest.Start(t, redistest.Options{})
	nodes := startCluster(t, redis, 3)
	var ids []string
	for _, n := range nodes {
		c := dial(t, n.WS, nil)
		c.subscribe("chat:p")
		ids = append(ids, c.Welcome.ClientID)
	}
	sort.Strings(ids)
	for i := 1; i <= 5; i++ {
		publishJSON(t, nodes[i%3], "chat:p", fmt.Sprint(i))
	}
	for _, n := range nodes {
		r := post(t, "GET", n.URL+"/api/presence/chat:p", "", "", nil)
		var p struct {
			Clients []struct {
				ClientID string `json:"client_id"`
			} `json:"clients"`
		}
		if err := json.Unmarshal([]byte(r.Body), &p); err != nil || r.Status != 200 {
			t.Fatalf("presence from %s: %d %s", n.Addr, r.Status, r.Body)
		}
		var got []string
		for _, c := range p.Clients {
			got = append(got, c.ClientID)
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Fatalf("presence from %s lists %v, want %v", n.Addr, got, ids)
		}
		h := post(t, "GET", n.URL+"/api/history/chat:p", "", "", nil)
		var hist struct {
			Offset   uint64 `json:"offset"`
			Messages []struct {
				Offset uint64          `json:"offset"`
				Data   json.RawMessage `json:"data"`
			} `json:"messages"`
		}
		if err := json.Unmarshal([]byte(h.Body), &hist); err != nil || hist.Offset != 5 || len(hist.Messages) != 5 {
			t.Fatalf("history from %s: %d %s", n.Addr, h.Status, h.Body)
		}
	}
}

func TestClusterNodeLossClientsRecoverElsewhere(t *testing.T) {
	redis := redistest.Start(t, redistest.Options{})
	nodes := startCluster(t, redis, 2)
	a, b := nodes[0], nodes[1]
	c := dial(t, a.WS, nil)
	c.subscribe("chat:k")
	publishJSON(t, b, "chat:k", `"before"`)
	last := c.nextMessage()
	if last.Offset != 1 {
		t.Fatalf("first message: %+v", last)
	}
	// Node a goes away; its client is told to reconnect.
	stopped := make(chan error, 1)
	go func() { stopped <- a.Stop(t) }()
	c.expectClose(1001)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	// Published while the client is between nodes.
	for i := 2; i <= 4; i++ {
		publishJSON(t, b, "chat:k", fmt.Sprint(i))
	}
	// It reconnects to node b and recovers.
	c2 := dial(t, b.WS, nil)
	c2.send(fmt.Sprintf(`{"id":5,"op":"subscribe","channel":"chat:k","since":{"offset":%d,"epoch":%q}}`, last.Offset, last.Epoch))
	r := c2.nextMessage()
	if r.Type != "reply" || r.Recovered == nil || !*r.Recovered {
		t.Fatalf("resubscribe on another node: %+v", r)
	}
	for i := 2; i <= 4; i++ {
		if f := c2.nextMessage(); f.Offset != uint64(i) || string(f.Data) != fmt.Sprint(i) {
			t.Fatalf("recovered message %d: %+v", i, f)
		}
	}
}

func TestClusterRedisDownThenBack(t *testing.T) {
	redis := redistest.Start(t, redistest.Options{Durable: true})
	nodes := startCluster(t, redis, 2)
	a, b := nodes[0], nodes[1]
	c := dial(t, a.WS, nil)
	c.subscribe("chat:d")
	publishJSON(t, b, "chat:d", "1")
	if f := c.nextMessage(); f.Offset != 1 {
		t.Fatalf("first message: %+v", f)
	}

	redis.Stop()
	waitReadyz(t, a, 503)
	waitReadyz(t, b, 503)
	r := post(t, "POST", b.URL+"/api/publish", "application/json", `{"channel":"chat:d","data":2}`, nil)
	if r.Status != 503 || r.errorCode() != "unavailable" {
		t.Fatalf("publish with Redis down: %d %s, want 503 unavailable", r.Status, r.Body)
	}
	// The WebSocket stays up meanwhile.
	if f := c.call(7, `{"id":7,"op":"ping"}`); !f.OK {
		t.Fatalf("ping with Redis down: %+v", f)
	}

	redis.Restart()
	waitReadyz(t, a, 200)
	waitReadyz(t, b, 200)
	var wg sync.WaitGroup
	wg.Go(func() { publishJSON(t, b, "chat:d", "3") })
	if f := c.nextMessage(); f.Offset != 2 || string(f.Data) != "3" {
		t.Fatalf("after Redis came back: %+v (data %s), want offset 2", f, f.Data)
	}
	wg.Wait()
}

func TestClusterOverNATS(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })

	// History needs a broker that keeps it: NATS is refused at start.
	cfg := clusterConfig(t)
	err = run(context.Background(), []string{"wspush", "serve", "--addr", "127.0.0.1:0", "--broker", "nats", "--nats-url", ns.ClientURL(), "--config", cfg},
		func(string) string { return "" }, strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "history_size is set, but this broker keeps no history") {
		t.Fatalf("a history namespace on NATS: %v", err)
	}

	a := startServer(t, "--broker", "nats", "--nats-url", ns.ClientURL())
	b := startServer(t, "--broker", "nats", "--nats-url", ns.ClientURL())
	waitReadyz(t, a, 200)
	waitReadyz(t, b, 200)
	ca, cb := dial(t, a.WS+"?channels=n.1", nil), dial(t, b.WS+"?channels=n.1", nil)
	// Order holds per publishing node: a NATS publish returns once the
	// client buffered it, so two nodes' messages may interleave.
	for i := range 20 {
		publishJSON(t, a, "n.1", fmt.Sprint(i))
	}
	for _, c := range []*wsConn{ca, cb} {
		for i := range 20 {
			if f := c.nextMessage(); string(f.Data) != fmt.Sprint(i) {
				t.Fatalf("message %d: %+v", i, f)
			}
		}
	}
	// And the other node's publishes reach both nodes too.
	publishJSON(t, b, "n.1", `"from b"`)
	for _, c := range []*wsConn{ca, cb} {
		if f := c.nextMessage(); string(f.Data) != `"from b"` {
			t.Fatalf("message from node b: %+v", f)
		}
	}
}

// pubsubGate is a TCP proxy to Redis that can hold back what Redis sends
// on the PUB/SUB connection (the one that sent SUBSCRIBE), as a slow
// network or a busy subscriber goroutine does, while every other
// connection flows.
type pubsubGate struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startPubsubGate(t *testing.T, target string) *pubsubGate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &pubsubGate{ln: ln, target: target}
	g.cond = sync.NewCond(&g.mu)
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(func() {
		g.resume()
		ln.Close()
		g.mu.Lock()
		for _, c := range g.conns {
			c.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

func (g *pubsubGate) URL() string { return "redis://" + g.ln.Addr().String() }

func (g *pubsubGate) pause() { g.mu.Lock(); g.paused = true; g.mu.Unlock() }
func (g *pubsubGate) resume() {
	g.mu.Lock()
	g.paused = false
	g.mu.Unlock()
	g.cond.Broadcast()
}

func (g *pubsubGate) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", g.target)
		if err != nil {
			c.Close()
			continue
		}
		g.mu.Lock()
		g.conns = append(g.conns, c, s)
		g.mu.Unlock()
		var pubsub atomic.Bool
		g.wg.Add(2)
		go func() { // client -> redis
			defer g.wg.Done()
			defer s.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if bytes.Contains(bytes.ToLower(buf[:n]), []byte("\r\nsubscribe\r\n")) {
						pubsub.Store(true)
					}
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // redis -> client, held while paused on the PUB/SUB connection
			defer g.wg.Done()
			defer c.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					if pubsub.Load() {
						g.mu.Lock()
						for g.paused {
							g.cond.Wait()
						}
						g.mu.Unlock()
					}
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// nextNonPresence returns the next frame that is not a join or leave, or fails.
func nextNonPresence(p *pump) frame {
	for {
		if f := p.next(); f.Type != "join" && f.Type != "leave" {
			return f
		}
	}
}

// TestLaggingPubSubNoDuplicate: a message whose PUB/SUB delivery to the
// node lags behind the history the subscribe read is not delivered again,
// live, after a recovery that replayed it. It used to be: m1 twice, the
// second time at an offset not after the reply's.
func TestLaggingPubSubNoDuplicate(t *testing.T) {
	redis := redistest.Start(t, redistest.Options{})
	gate := startPubsubGate(t, redis.Addr)
	cfg := clusterConfig(t)
	s := startServer(t, "--broker", "redis", "--redis-url", gate.URL(), "--config", cfg)
	waitReadyz(t, s, 200)

	// Someone on this node is subscribed already: the node's Redis
	// subscription is live, a second subscribe makes no broker call.
	x := dial(t, s.WS, nil)
	x.subscribe("chat:dup")

	gate.pause() // PUB/SUB deliveries to this node lag
	p1 := publishAt(t, s, "chat:dup", `"m1"`)

	y := dial(t, s.WS, nil).pump()
	r := y.call(1, `{"id":1,"op":"subscribe","channel":"chat:dup","since":{"offset":0,"epoch":""}}`)
	if !r.OK || r.Recovered == nil || !*r.Recovered || r.Offset != p1.Offset {
		t.Fatalf("subscribe reply %s, want recovered up to offset %d", r.raw, p1.Offset)
	}
	if f := nextNonPresence(y); f.Type != "message" || f.Offset != p1.Offset {
		t.Fatalf("recovered frame %s, want m1 at offset %d", f.raw, p1.Offset)
	}
	gate.resume() // the lagging delivery of m1 arrives
	publishAt(t, s, "chat:dup", `"m2"`)
	if f := nextNonPresence(y); f.Offset != p1.Offset+1 {
		t.Fatalf("after recovering m1 (offset %d) the next push is %s: want m2 at offset %d; a duplicate, at an offset not after the reply's", p1.Offset, f.raw, p1.Offset+1)
	}
}

// TestRecoveryAcrossHistorySizes: where the channel's Redis stream holds
// more than this node's history_size (another node keeps more: a rolling
// config change), recovery replays everything up to the reply's offset,
// or says "recovered":false. It used to say true and skip messages.
func TestRecoveryAcrossHistorySizes(t *testing.T) {
	redis := redistest.Start(t, redistest.Options{})
	big := writeConfig(t, "namespaces:\n  - name: chat\n    history_size: 100\n    client_publish: true\n")
	small := writeConfig(t, "namespaces:\n  - name: chat\n    history_size: 10\n    client_publish: true\n")
	a := startServer(t, "--broker", "redis", "--redis-url", redis.URL, "--config", big)
	b := startServer(t, "--broker", "redis", "--redis-url", redis.URL, "--config", small)
	waitReadyz(t, a, 200)
	waitReadyz(t, b, 200)
	var since position
	for i := 1; i <= 30; i++ {
		p := publishAt(t, a, "chat:gap", fmt.Sprint(i))
		if i == 5 {
			since = p
		}
	}
	c := dial(t, b.WS, nil).pump()
	r := c.call(1, `{"id":1,"op":"subscribe","channel":"chat:gap","since":`+since.since()+`}`)
	if !r.OK {
		t.Fatalf("subscribe: %s", r.raw)
	}
	if r.Recovered == nil || !*r.Recovered {
		return // not recovered: the client knows to reload
	}
	sentinel := publishAt(t, b, "chat:gap", `"live"`) // ends the replay, whatever it held
	var offs []uint64
	for {
		f := nextNonPresence(c)
		offs = append(offs, f.Offset)
		if f.Offset >= sentinel.Offset {
			break
		}
	}
	for i, o := range offs {
		if o != since.Offset+1+uint64(i) {
			t.Fatalf("reply %s (recovered:true from offset %d); offsets received: %v: a gap", r.raw, since.Offset, offs)
		}
	}
}

// TestChannelsFailingAtConnectClose1013: when the ?channels= subscriptions
// fail at connect (the broker is unavailable), the connection is closed
// with 1013 (try again later) and no welcome. It used to get the welcome
// and then a reply to no command, which a client that sends commands
// without ids takes for the reply to its first one.
func TestChannelsFailingAtConnectClose1013(t *testing.T) {
	redis := redistest.Start(t, redistest.Options{})
	proxy := proxytest.Start(t, redis.Addr)
	s := startServer(t, "--broker", "redis", "--redis-url", "redis://"+proxy.Addr())
	waitReadyz(t, s, 200)
	proxy.Down()
	waitReadyz(t, s, 503)
	c, _, err := websocket.DefaultDialer.Dial(s.WS+"?channels=news", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, b, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 1013 {
		t.Fatalf("first frame %q, err %v; want a close with 1013 and no welcome", b, err)
	}
	// Without ?channels= the same server still welcomes.
	dial(t, s.WS, nil)
}
