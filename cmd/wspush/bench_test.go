package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/loadtest"
)

// runBenchCmd runs "wspush bench args..." and returns its stdout and stderr.
func runBenchCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, append([]string{"wspush", "bench"}, args...), func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestBenchFanout(t *testing.T) {
	s := startServer(t, "--api-key", "k")
	report := filepath.Join(t.TempDir(), "out.html")
	stdout, stderr, err := runBenchCmd(t, "fanout", "--url", s.WS, "--api", s.URL+"/api/publish", "--api-key", "k",
		"-n", "20", "--rate", "40", "--duration", "1s", "--payload", "80", "--json", "--report", report)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var r loadtest.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, stdout)
	}
	d, p := r.Delivery, r.Publish
	if r.Connect.Connected != 20 || p.OK != 40 || p.APIErrors != 0 {
		t.Fatalf("connected %d, published %d, api errors %d\n%s", r.Connect.Connected, p.OK, p.APIErrors, stderr)
	}
	if d.Lost != 0 || d.Duplicates != 0 || d.Delivered != p.OK*20 || d.Expected != d.Delivered {
		t.Fatalf("delivery %+v\n%s", d, stderr)
	}
	if r.Latency.Samples != uint64(d.Delivered) || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P999 {
		t.Fatalf("latency %+v", r.Latency)
	}
	if !strings.Contains(stderr, "lost 0, duplicates 0") {
		t.Fatalf("no summary on stderr:\n%s", stderr)
	}
	page, err := os.ReadFile(report)
	if err != nil || !bytes.Contains(page, []byte("<svg")) {
		t.Fatalf("HTML report: %v", err)
	}
}

func TestBenchConns(t *testing.T) {
	s := startServer(t)
	stdout, stderr, err := runBenchCmd(t, "conns", "--url", s.WS, "-n", "100", "--ramp", "0", "--hold", "100ms", "--metrics", s.URL+"/metrics")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{"100 of 100", "0 failed", "per connection", "process_resident_memory_bytes"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("summary lacks %q:\n%s", want, stdout)
		}
	}
}

func TestBenchPublish(t *testing.T) {
	s := startServer(t)
	stdout, stderr, err := runBenchCmd(t, "publish", "--url", s.WS, "--api", s.URL+"/api/publish",
		"--workers", "4", "--duration", "300ms", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var r loadtest.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.Publish.OK == 0 || r.Publish.APIErrors != 0 || r.Delivery.Lost != 0 || r.APILatency.Samples == 0 {
		t.Fatalf("publish %+v delivery %+v", r.Publish, r.Delivery)
	}
}

func TestBenchRefuses(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"conns", "--url", "ws://192.0.2.1:7777/ws", "-n", "1"}, "--allow-remote"},
		{[]string{"fanout", "--url", "ws://127.0.0.1:1/ws", "--api", "http://example.com/api/publish", "--rate", "1"}, "loopback"},
		{[]string{"conns", "--url", "ws://127.0.0.1:1/ws", "-n", "100000000"}, "RLIMIT_NOFILE"},
		{[]string{"fanout", "--url", "ws://127.0.0.1:1/ws", "-n", "1"}, "--rate"},
		{[]string{"fanout", "--proto", "centrifugo"}, "unknown protocol"},
		{[]string{"flood"}, "unknown bench subcommand"},
		{nil, "subcommand"},
	}
	for _, tt := range tests {
		_, _, err := runBenchCmd(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("bench %v: %v, want an error with %q", tt.args, err, tt.want)
		}
	}
}

// TestBenchRefusesBadValues: out-of-range values are refused, naming the
// flag. They used to be replaced by defaults without a word, and the run
// went ahead with other settings than asked.
func TestBenchRefusesBadValues(t *testing.T) {
	base := []string{"--url", "ws://127.0.0.1:1/ws", "--api", "http://127.0.0.1:1/api/publish"}
	for _, tt := range []struct{ flag, sub string }{
		{"--duration=-5s", "fanout"}, {"--duration=0", "fanout"}, {"--drain=-1s", "fanout"},
		{"--payload=-5", "fanout"}, {"--workers=-2", "fanout"}, {"--ramp=-10", "fanout"},
		{"--timeout=-1s", "fanout"}, {"--pid=-3", "fanout"}, {"--hold=-1s", "conns"},
	} {
		args := append([]string{tt.sub, "-n", "1", tt.flag}, base...)
		if tt.sub == "fanout" {
			args = append(args, "--rate", "1")
		} else {
			args = args[:len(args)-2]
		}
		_, _, err := runBenchCmd(t, args...)
		name := strings.SplitN(strings.TrimPrefix(tt.flag, "--"), "=", 2)[0]
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("bench %s %s: %v, want it refused", tt.sub, tt.flag, err)
		}
	}
	// wss is refused, with the reason: the client reads raw frames.
	_, _, err := runBenchCmd(t, "fanout", "-n", "1", "--rate", "1", "--url", "wss://127.0.0.1:1/ws", "--api", "http://127.0.0.1:1/api/publish")
	if err == nil || !strings.Contains(err.Error(), "wss:// is not supported") {
		t.Errorf("bench fanout --url wss://...: %v, want it refused", err)
	}
}
