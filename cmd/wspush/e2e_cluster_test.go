package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

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
