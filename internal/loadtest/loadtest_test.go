package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	)
}

// seedServer is a minimal server speaking the seed protocol: a
// "heartbeat" once the connection is registered, right after the upgrade
// (so it often arrives with the handshake response), then every POST
// /push body to every connection.
type seedServer struct {
	*httptest.Server
	seedConns
}

type seedConn struct {
	mu sync.Mutex
	ws *websocket.Conn
}

func (c *seedConn) write(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.ws.WriteMessage(websocket.TextMessage, b)
}

// seedConns is the set of a test server's connections.
type seedConns struct {
	mu    sync.Mutex
	conns map[*seedConn]struct{}
}

// hold keeps c in the set until it ends, reading what it sends; it
// calls registered, if not nil, once c is in the set.
func (s *seedConns) hold(c *seedConn, registered func()) {
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*seedConn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	if registered != nil {
		registered()
	}
	for {
		if _, _, err := c.ws.ReadMessage(); err != nil {
			break
		}
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.ws.Close()
}

// broadcast writes each of frames to every connection.
func (s *seedConns) broadcast(frames ...[]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		for _, f := range frames {
			c.write(f)
		}
	}
}

func startSeedServer(t *testing.T) *seedServer {
	s := &seedServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &seedConn{ws: ws}
		s.hold(c, func() { c.write([]byte("heartbeat")) })
	})
	mux.HandleFunc("POST /push", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.broadcast(body, []byte("heartbeat")) // the heartbeat: noise the client must ignore
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.048576e+07")
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *seedServer) target() Target {
	u := strings.TrimPrefix(s.URL, "http://")
	return Target{URL: "ws://" + u + "/ws", API: s.URL + "/push", Proto: Seed, SrcIPs: 2, Timeout: 5 * time.Second}
}

func TestFanoutSeed(t *testing.T) {
	s := startSeedServer(t)
	var progress bytes.Buffer
	r, err := RunFanout(context.Background(), FanoutConfig{
		Target: s.target(), N: 10, Rate: 100, Duration: 500 * time.Millisecond, Payload: 100, PID: os.Getpid(),
	}, &Progress{W: &progress, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Connect.Connected != 10 || r.Publish.OK != 50 || r.Publish.APIErrors != 0 {
		t.Fatalf("connected %d, published %d, api errors %d", r.Connect.Connected, r.Publish.OK, r.Publish.APIErrors)
	}
	d := r.Delivery
	if d.Expected != 500 || d.Delivered != 500 || d.Lost != 0 || d.Duplicates != 0 || d.Malformed != 0 {
		t.Fatalf("delivery %+v", d)
	}
	if r.Latency.Samples != 500 || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P99 || r.CPU == nil {
		t.Fatalf("latency %+v cpu %+v", r.Latency, r.CPU)
	}
	if k := r.KernelLatency; rxStampsSupported && (k == nil || k.Samples == 0 || k.P50 > r.Latency.P50) {
		t.Fatalf("kernel latency %+v, client latency %+v", k, r.Latency)
	}
	if _, err := os.Stat("/proc/stat"); err == nil {
		if m := r.Machine; m == nil || m.BusyPercent <= 0 || m.BusyPercent > 100 || m.StealPercent < 0 || m.StealPercent > 100 {
			t.Fatalf("machine cpu %+v", m)
		}
		var text bytes.Buffer
		if err := r.WriteText(&text); err != nil || !strings.Contains(text.String(), "steal") {
			t.Fatalf("the summary has no machine line (%v):\n%s", err, text.String())
		}
	}
	if !strings.Contains(progress.String(), "connecting") || !strings.Contains(progress.String(), "publishing") {
		t.Fatalf("progress:\n%s", progress.String())
	}
	checkOutputs(t, r)
}

func TestPublishSeed(t *testing.T) {
	s := startSeedServer(t)
	r, err := RunPublish(context.Background(), PublishConfig{Target: s.target(), Workers: 4, Duration: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Publish.OK == 0 || r.Delivery.Lost != 0 || r.Delivery.Delivered != r.Publish.OK || r.APILatency.Samples == 0 {
		t.Fatalf("publish %+v delivery %+v", r.Publish, r.Delivery)
	}
	checkOutputs(t, r)
}

func TestConns(t *testing.T) {
	s := startSeedServer(t)
	for _, cfg := range []ConnsConfig{
		{Target: s.target(), N: 50, Hold: 50 * time.Millisecond, PID: os.Getpid()},
		{Target: s.target(), N: 20, Hold: 50 * time.Millisecond, Metrics: s.URL + "/metrics", Ramp: 1000},
	} {
		r, err := RunConns(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Connect.Connected != cfg.N || r.Connect.Failed != 0 || r.Memory == nil || r.Memory.Connections != cfg.N {
			t.Fatalf("connect %+v memory %+v", r.Connect, r.Memory)
		}
		checkOutputs(t, r)
	}
}

func TestConnectFailures(t *testing.T) {
	s := startSeedServer(t)
	tgt := s.target()
	tgt.URL = strings.Replace(tgt.URL, "/ws", "/nothing", 1) // 404 before the upgrade
	r, err := RunConns(context.Background(), ConnsConfig{Target: tgt, N: 5, Ramp: 0}, nil)
	if err == nil || r.Connect.Failed != 5 || r.Connect.Failures["handshake: HTTP 404"] != 5 {
		t.Fatalf("err %v, connect %+v", err, r.Connect)
	}
	if _, err := RunConns(context.Background(), ConnsConfig{Target: Target{URL: "ws://192.0.2.1/ws"}, N: 1}, nil); err == nil ||
		!strings.Contains(err.Error(), "loopback") {
		t.Fatalf("a remote target was not refused: %v", err)
	}
}

// checkOutputs renders every output format of r.
func checkOutputs(t *testing.T, r *Report) {
	t.Helper()
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil || !strings.Contains(text.String(), "connect") {
		t.Fatalf("text: %v\n%s", err, text.String())
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil || back.Command != r.Command || back.Connect.Connected != r.Connect.Connected {
		t.Fatalf("JSON round trip: %v", err)
	}
	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	h := page.String()
	if strings.Count(h, "<svg") == 0 || strings.Count(h, "<svg") != strings.Count(h, "</svg>") {
		t.Fatalf("charts missing or unbalanced:\n%s", h)
	}
	for _, external := range []string{"<script", "src=", "href=", "url(", "@import"} {
		if strings.Contains(h, external) {
			t.Fatalf("the report refers to something outside it (%s)", external)
		}
	}
	if r.Latency != nil && !strings.Contains(h, "Latency by percentile") {
		t.Fatal("no latency chart")
	}
	if r.Delivery != nil && !strings.Contains(h, "Deliveries received per second") {
		t.Fatal("no delivery rate chart")
	}
}
