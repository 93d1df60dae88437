//go:build linux

package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// harness is a Server and the http.Server behind it on 127.0.0.1:0. Its
// handler answers "<path> via <who>" where who is h1 or net/http, and
// echoes the body.
type harness struct {
	t      *testing.T
	srv    *Server
	http   *http.Server
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
	// block, when set, makes /block wait until it is closed.
	block chan struct{}
}

func fast(method, path string) bool {
	return method == http.MethodPost && strings.HasPrefix(path, "/fast")
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, addr: ln.Addr().String(), done: make(chan struct{}), block: make(chan struct{})}
	handler := func(via string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/fast/panic" {
				panic("boom")
			}
			if r.URL.Path == "/fast/block" {
				<-h.block
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("reading body: %v", err)
			}
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("X-Auth", r.Header.Get("Authorization"))
			fmt.Fprintf(w, "%s %s via %s: %s", r.Method, r.URL.RequestURI(), via, body)
		})
	}
	if cfg.Fast == nil {
		cfg.Fast = fast
	}
	cfg.Handler = handler("h1")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h.srv = NewServer(logger, ln, cfg)
	h.http = &http.Server{Handler: handler("net/http"), ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := h.srv.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	wg.Go(func() {
		if err := h.http.Serve(h.srv.Listener()); !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	go func() { wg.Wait(); close(h.done) }()
	<-h.srv.Started()
	t.Cleanup(h.stop)
	return h
}

// stop shuts both servers down and waits for them.
func (h *harness) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
	_ = h.http.Shutdown(ctx)
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		h.t.Fatal("servers did not stop")
	}
}

// dial opens a raw connection to the harness.
func (h *harness) dial() (net.Conn, *bufio.Reader) {
	h.t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func post(path, body string, extra ...string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n" +
		strings.Join(extra, "") + "\r\n" + body
}

// readResponse reads one response and returns its status, body and header.
func readResponse(t *testing.T, br *bufio.Reader) (int, string, http.Header) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	if resp.Close {
		resp.Header.Set("Connection", "close") // ReadResponse takes it out
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

func expect(t *testing.T, br *bufio.Reader, wantStatus int, wantBody string) http.Header {
	t.Helper()
	status, body, hdr := readResponse(t, br)
	if status != wantStatus || body != wantBody {
		t.Fatalf("got %d %q, want %d %q", status, body, wantStatus, wantBody)
	}
	return hdr
}

func TestFastRequestsServedHere(t *testing.T) {
	h := newHarness(t, Config{})
	c, br := h.dial()
	for i := range 3 {
		body := fmt.Sprint("m", i)
		write(t, c, post("/fast/x?q=1", body, "Authorization: Bearer k\r\n"))
		hdr := expect(t, br, 200, "POST /fast/x?q=1 via h1: "+body)
		if hdr.Get("X-Auth") != "Bearer k" || hdr.Get("Date") == "" || hdr.Get("Content-Type") != "text/plain" {
			t.Fatalf("header %v", hdr)
		}
	}
	if st := h.srv.Stats(); st.Served != 3 || st.HandedOff != 0 {
		t.Fatalf("stats %+v, want 3 served, none handed off", st)
	}
}

func TestOtherConnectionsGoToNetHTTP(t *testing.T) {
	h := newHarness(t, Config{})
	c, br := h.dial()
	write(t, c, "GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
	expect(t, br, 200, "GET /page via net/http: ")
	// The connection stays with net/http, even for a fast route.
	write(t, c, post("/fast/x", "b"))
	expect(t, br, 200, "POST /fast/x via net/http: b")
	if st := h.srv.Stats(); st.Served != 0 || st.HandedOff != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A connection served here hands itself over, with what it read, at the
// first request net/http has to serve; pipelined requests keep their order.
func TestHandOffMidConnection(t *testing.T) {
	h := newHarness(t, Config{})
	c, br := h.dial()
	write(t, c, post("/fast/1", "a")+"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"+post("/fast/2", "b"))
	expect(t, br, 200, "POST /fast/1 via h1: a")
	expect(t, br, 200, "GET /slow via net/http: ")
	expect(t, br, 200, "POST /fast/2 via net/http: b")
}

func TestLeftToNetHTTP(t *testing.T) {
	h := newHarness(t, Config{MaxBodySize: 16})
	cases := []struct {
		name, req, want string
	}{
		{"chunked", "POST /fast/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST /fast/c via net/http: abc"},
		{"http/1.0", "POST /fast/o HTTP/1.0\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", "POST /fast/o via net/http: hi"},
		{"no length", "POST /fast/n HTTP/1.1\r\nHost: x\r\n\r\n", "POST /fast/n via net/http: "},
		{"body over the limit", post("/fast/big", strings.Repeat("z", 17)), "POST /fast/big via net/http: " + strings.Repeat("z", 17)},
		{"expect", post("/fast/e", "ok", "Expect: 100-continue\r\n"), "POST /fast/e via net/http: ok"},
		{"escaped path", post("/fast/%41", "p"), "POST /fast/%41 via net/http: p"},
		{"head over 8 KiB", post("/fast/h", "h", "X-Big: "+strings.Repeat("b", 9000)+"\r\n"), "POST /fast/h via net/http: h"},
		{"upgrade", post("/fast/u", "u", "Connection: Upgrade\r\nUpgrade: foo\r\n"), "POST /fast/u via net/http: u"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Behind a request served here, so that the hand-off carries
			// the bytes already read.
			c, br := h.dial()
			write(t, c, post("/fast/first", "1")+tc.req)
			expect(t, br, 200, "POST /fast/first via h1: 1")
			if strings.Contains(tc.req, "Expect") {
				expect(t, br, 100, "")
			}
			expect(t, br, 200, tc.want)
		})
	}
}

func TestMalformedRequestsGetNetHTTPsAnswer(t *testing.T) {
	h := newHarness(t, Config{})
	for _, req := range []string{
		"POST /fast/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"POST /fast/x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
		"POST /fast/x HTTP/1.1\r\nHost: x\r\nBad Name: v\r\nContent-Length: 0\r\n\r\n",
		"POST /fast/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", // no Host
	} {
		c, br := h.dial()
		write(t, c, post("/fast/first", "1")+req)
		expect(t, br, 200, "POST /fast/first via h1: 1")
		if status, _, _ := readResponse(t, br); status != http.StatusBadRequest {
			t.Fatalf("%q: status %d, want 400", req, status)
		}
	}
}

// Requests that arrive in pieces, and several in one segment.
func TestPartialAndPipelined(t *testing.T) {
	h := newHarness(t, Config{})
	c, br := h.dial()
	req := post("/fast/p", strings.Repeat("x", 100))
	for i := 0; i < len(req); i += 7 {
		write(t, c, req[i:min(i+7, len(req))])
		time.Sleep(time.Millisecond) // let each piece arrive alone (not synchronization: the answer is awaited below)
	}
	expect(t, br, 200, "POST /fast/p via h1: "+strings.Repeat("x", 100))
	var all strings.Builder
	for i := range 50 {
		all.WriteString(post(fmt.Sprint("/fast/", i), fmt.Sprint(i)))
	}
	write(t, c, all.String())
	for i := range 50 {
		expect(t, br, 200, fmt.Sprintf("POST /fast/%d via h1: %d", i, i))
	}
	if st := h.srv.Stats(); st.Served != 51 || st.HandedOff != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A body larger than the read buffer is read whole.
func TestLargeBody(t *testing.T) {
	h := newHarness(t, Config{MaxBodySize: 100 << 10})
	c, br := h.dial()
	body := strings.Repeat("0123456789", 5000)
	write(t, c, post("/fast/l", body)+post("/fast/after", "a"))
	expect(t, br, 200, "POST /fast/l via h1: "+body)
	expect(t, br, 200, "POST /fast/after via h1: a")
}

func TestConnectionClose(t *testing.T) {
	h := newHarness(t, Config{})
	c, br := h.dial()
	write(t, c, post("/fast/c", "bye", "Connection: close\r\n"))
	hdr := expect(t, br, 200, "POST /fast/c via h1: bye")
	if hdr.Get("Connection") != "close" {
		t.Fatalf("Connection %q, want close", hdr.Get("Connection"))
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after Connection: close, read %v, want EOF", err)
	}
}

func TestHandlerPanicClosesOnlyItsConnection(t *testing.T) {
	h := newHarness(t, Config{})
	c, br := h.dial()
	other, obr := h.dial()
	write(t, c, post("/fast/ok", "1")+post("/fast/panic", "2"))
	expect(t, br, 200, "POST /fast/ok via h1: 1")
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after a panic, read %v, want EOF", err)
	}
	write(t, other, post("/fast/still", "3"))
	expect(t, obr, 200, "POST /fast/still via h1: 3")
}

func TestTimeouts(t *testing.T) {
	h := newHarness(t, Config{ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	silent, sbr := h.dial()
	partial, pbr := h.dial()
	write(t, partial, post("/fast/p", "1")+"POST /fast/q HTTP/1.1\r\nHo")
	expect(t, pbr, 200, "POST /fast/p via h1: 1")
	idle, ibr := h.dial()
	write(t, idle, post("/fast/i", "1"))
	expect(t, ibr, 200, "POST /fast/i via h1: 1")
	start := time.Now()
	for _, br := range []*bufio.Reader{sbr, pbr, ibr} {
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("read %v, want EOF", err)
		}
	}
	_ = silent
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

// Shutdown closes idle connections at once and lets a request in flight
// finish.
func TestShutdown(t *testing.T) {
	h := newHarness(t, Config{})
	idle, ibr := h.dial()
	write(t, idle, post("/fast/i", "1"))
	expect(t, ibr, 200, "POST /fast/i via h1: 1")
	busy, bbr := h.dial()
	write(t, busy, post("/fast/block", "b"))
	waitFor(t, func() bool { return h.srv.Stats().Served == 1 && len(h.srv.snapshot()) == 2 && !idleConn(h.srv, 2) })

	shut := make(chan error, 1)
	go func() { shut <- h.srv.Shutdown(context.Background()) }()
	if _, err := ibr.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(h.block)
	expect(t, bbr, 200, "POST /fast/block via h1: b")
	if _, err := bbr.ReadByte(); err != io.EOF {
		t.Fatalf("busy connection after its answer: read %v, want EOF", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", h.addr); err == nil {
		t.Fatal("dial after Shutdown succeeded")
	}
}

// idleConn reports whether every one of n connections is idle.
func idleConn(s *Server, n int) bool {
	list := s.snapshot()
	idle := 0
	for _, c := range list {
		if c.idle.Load() {
			idle++
		}
	}
	return len(list) == n && idle == n
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not synchronization
	}
}

// Many clients at once, through both paths.
func TestConcurrentClients(t *testing.T) {
	h := newHarness(t, Config{})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				body := fmt.Sprintf("%d-%d", w, i)
				method, path, via := http.MethodPost, "/fast/c", "h1"
				if i%10 == 9 {
					method, path, via = http.MethodPut, "/other", "net/http"
				}
				req, _ := http.NewRequest(method, "http://"+h.addr+path, strings.NewReader(body))
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := method + " " + path + " via " + via + ": " + body; string(b) != want && !strings.HasSuffix(string(b), "via net/http: "+body) {
					t.Errorf("got %q, want %q", b, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if st := h.srv.Stats(); st.Served == 0 {
		t.Fatalf("stats %+v: nothing served here", st)
	}
}

// A client that sends requests and reads no answers is cut off once an
// answer has waited WriteTimeout for room in its socket; other clients
// are served meanwhile.
func TestClientThatDoesNotReadIsCutOff(t *testing.T) {
	h := newHarness(t, Config{WriteTimeout: 200 * time.Millisecond})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	batch := strings.Repeat(post("/fast/x", "1"), 1000)
	done := make(chan error, 1)
	go func() {
		for {
			_ = c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.WriteString(c, batch); err != nil {
				done <- err
				return
			}
		}
	}()
	other, obr := h.dial()
	write(t, other, post("/fast/other", "2"))
	expect(t, obr, 200, "POST /fast/other via h1: 2")
	select {
	case err := <-done:
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the server kept the connection: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the connection was not cut off")
	}
	waitFor(t, func() bool { return len(h.srv.snapshot()) == 1 }) // the other one
}

// A request that trickles in is cut off ReadHeaderTimeout after its first
// byte, however often its bytes come.
func TestSlowRequestIsCutOff(t *testing.T) {
	h := newHarness(t, Config{ReadHeaderTimeout: 300 * time.Millisecond})
	c, br := h.dial()
	write(t, c, post("/fast/first", "1"))
	expect(t, br, 200, "POST /fast/first via h1: 1")
	slow := post("/fast/slow", "2", "X-Pad: "+strings.Repeat("p", 200)+"\r\n")
	start := time.Now()
	for i := range len(slow) { // a byte every 10 ms: 2.5 s in all
		if _, err := c.Write([]byte{slow[i]}); err != nil {
			break // cut off
		}
		time.Sleep(10 * time.Millisecond) // the client's pace, not synchronization
		if time.Since(start) > 5*time.Second {
			break
		}
	}
	if _, err := br.ReadByte(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read %v, want the connection closed", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cut off after %v, want about 300 ms", d)
	}
}

// TestPartialFirstLineIsReleased: a connection whose first line never ends
// (the peer closes after part of it, or stalls) is released after the
// head timeout: its goroutine and descriptor go. They used to stay for
// good: the peek found the same partial line at every wake-up, and a
// server full of them stopped accepting and could not shut down.
func TestPartialFirstLineIsReleased(t *testing.T) {
	h := newHarness(t, Config{ReadHeaderTimeout: 100 * time.Millisecond})
	closing, _ := h.dial()
	write(t, closing, "POST /fast/p")
	closing.Close()
	stalled, sbr := h.dial()
	write(t, stalled, "POST /fast/q")
	if _, err := sbr.ReadByte(); err != io.EOF {
		t.Fatalf("read %v on the stalled connection, want EOF", err)
	}
	waitFor(t, func() bool { return len(h.srv.snapshot()) == 0 })
}

// TestFirstRequestTimeRunsFromTheConnection: the first request has
// ReadHeaderTimeout from the connection's start, its first line's wait
// included. The line's arrival used to start a fresh timeout: a client
// trickling its first request had twice as long.
func TestFirstRequestTimeRunsFromTheConnection(t *testing.T) {
	const timeout = 400 * time.Millisecond
	h := newHarness(t, Config{ReadHeaderTimeout: timeout})
	start := time.Now()
	c, br := h.dial()
	write(t, c, "POST /fast/p")
	time.Sleep(3 * timeout / 4) // the client's pace: the first line ends late
	write(t, c, " HTTP/1.1\r\nHost: x\r\n")
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("read %v, want EOF", err)
	}
	if d := time.Since(start); d > timeout+timeout/2 {
		t.Fatalf("cut off %v after the connection began, want about %v", d.Round(time.Millisecond), timeout)
	}
}

// TestDeclaredBodyReservesNothingUpFront: a head declaring a large body
// does not reserve it before its bytes come; the buffer grows as they do.
// It used to: 200 heads of 60,000-byte bodies held 12 MB.
func TestDeclaredBodyReservesNothingUpFront(t *testing.T) {
	h := newHarness(t, Config{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 200
	for range n {
		c, _ := h.dial()
		write(t, c, "POST /fast/x HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n0123456789")
	}
	waitFor(t, func() bool { // every head read
		list := h.srv.snapshot()
		for _, c := range list {
			if c.idle.Load() {
				return false
			}
		}
		return len(list) == n
	})
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 6<<20 {
		t.Fatalf("%d heads declaring 60,000-byte bodies allocated %d MB", n, grew>>20)
	}
}
