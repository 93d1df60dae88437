package loadtest

import (
	"runtime"
	"strings"
	"testing"
)

func TestLoopbackOnly(t *testing.T) {
	ok := []string{"ws://127.0.0.1:7777/ws", "ws://127.9.9.9/ws", "ws://localhost:1/ws", "ws://LOCALHOST/ws", "ws://[::1]:7777/ws"}
	for _, u := range ok {
		if err := checkURL("--url", u, []string{"ws"}, false); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	refused := []string{"ws://10.0.0.1/ws", "ws://example.com/ws", "ws://localhost.example.com/ws", "ws://0.0.0.0:7777/ws", "ws://[::]/ws", "ws://128.0.0.1/ws"}
	for _, u := range refused {
		err := checkURL("--url", u, []string{"ws"}, false)
		if err == nil || !strings.Contains(err.Error(), "--allow-remote") {
			t.Errorf("%s: %v, want a refusal naming --allow-remote", u, err)
		}
		if err := checkURL("--url", u, []string{"ws"}, true); err != nil {
			t.Errorf("%s with --allow-remote: %v", u, err)
		}
	}
	for _, bad := range []string{"http://127.0.0.1/ws", "127.0.0.1:7777", "ws:///ws", "ws://[::1"} {
		if err := checkURL("--url", bad, []string{"ws"}, true); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	tgt := Target{URL: "ws://127.0.0.1:1/ws", API: "http://10.1.1.1/api/publish", Proto: Native}
	if err := tgt.check(true); err == nil || !strings.Contains(err.Error(), "--api") {
		t.Fatalf("a remote API was accepted: %v", err)
	}
}

func TestSourceIPs(t *testing.T) {
	tgt := Target{URL: "ws://127.0.0.1:7777/ws", SrcIPs: 3}
	ips := tgt.sourceIPs()
	if len(ips) != 3 || ips[0].String() != "127.0.0.1" || ips[2].String() != "127.0.0.3" {
		t.Fatalf("source IPs %v", ips)
	}
	for _, u := range []string{"ws://[::1]:7777/ws", "ws://10.0.0.1/ws"} {
		if ips := (Target{URL: u, SrcIPs: 3}).sourceIPs(); ips != nil {
			t.Fatalf("%s: source IPs %v, want none", u, ips)
		}
	}
}

func TestFileLimit(t *testing.T) {
	switch runtime.GOOS {
	case "windows", "plan9", "js", "wasip1":
		t.Skip("no RLIMIT_NOFILE here")
	}
	if err := checkFileLimit(10, 0); err != nil {
		t.Fatal(err)
	}
	err := checkFileLimit(1<<30, 32)
	if err == nil || !strings.Contains(err.Error(), "RLIMIT_NOFILE") || !strings.Contains(err.Error(), "highest -n possible") {
		t.Fatalf("err = %v, want one naming the limit and the highest -n", err)
	}
}
