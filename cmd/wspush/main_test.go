package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The pool of HTTP/1 client connections outlives single tests.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	)
}

// server is a wspush serve process run in-process by run(), the way main
// runs it, on 127.0.0.1:0.
type server struct {
	Addr string // host:port it listens on
	URL  string // http://host:port
	WS   string // ws://host:port/ws

	cancel context.CancelFunc
	done   chan error
	logs   *logBuffer
}

// startServer runs "wspush serve --addr 127.0.0.1:0 args..." and waits for
// its "listening" log line. The server stops when the test ends.
func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	return startServerEnv(t, func(string) string { return "" }, args...)
}

// startServerEnv is startServer with an environment.
func startServerEnv(t testing.TB, getenv func(string) string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &server{cancel: cancel, done: make(chan error, 1), logs: &logBuffer{}}
	argv := append([]string{"wspush", "serve", "--addr", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug"}, args...)
	go func() {
		err := run(ctx, argv, getenv, strings.NewReader(""), io.Discard, pw)
		pw.CloseWithError(io.EOF)
		s.done <- err
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.logs.add(line)
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("server exited before listening: %v\n%s", <-s.done, s.logs)
		}
		s.Addr, s.URL, s.WS = a, "http://"+a, "ws://"+a+"/ws"
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("server did not start within 10s\n%s", s.logs)
	}
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop stops the server as SIGTERM would and waits for run to return.
// It returns run's error; calling it again returns nil.
func (s *server) Stop(t testing.TB) error {
	t.Helper()
	s.cancel()
	select {
	case err, ok := <-s.done:
		if ok {
			close(s.done)
			return err
		}
		return nil
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not stop within 30s\n%s", s.logs)
		return nil
	}
}

// logBuffer keeps a server's log lines for failure messages.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) add(l string) {
	b.mu.Lock()
	b.lines = append(b.lines, l)
	b.mu.Unlock()
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

// Contains reports whether a log line contains every one of parts.
func (b *logBuffer) Contains(parts ...string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		ok := true
		for _, p := range parts {
			if !strings.Contains(l, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// eventually polls cond every few milliseconds until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
