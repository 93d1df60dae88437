package ws

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wspush/wspush"
)

// modes are the two I/O models every connection test runs under.
var modes = []struct {
	name       string
	goroutines bool
}{
	{"epoll", false},
	{"goroutines", true},
}

// forEachMode runs f as a subtest per I/O model, with cfg.Goroutines set.
func forEachMode(t *testing.T, f func(t *testing.T, cfg Config)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			f(t, Config{Goroutines: m.goroutines})
		})
	}
}

// recMsg is a message a recSession received.
type recMsg struct {
	binary  bool
	payload string
}

// recSession is the test Session: it echoes text messages, records every
// message and counts Closed calls.
type recSession struct {
	c *Conn

	mu     sync.Mutex
	msgs   []recMsg
	closed int
	late   int           // HandleMessage calls after Closed: must stay 0
	done   chan struct{} // closed by the first Closed call
}

func (s *recSession) HandleMessage(binary bool, payload []byte) {
	s.mu.Lock()
	if s.closed > 0 {
		s.late++
	}
	s.msgs = append(s.msgs, recMsg{binary, string(payload)})
	s.mu.Unlock()
	if !binary {
		s.c.SendText(payload)
	}
}

func (s *recSession) Closed() {
	s.mu.Lock()
	s.closed++
	n := s.closed
	s.mu.Unlock()
	if n == 1 {
		close(s.done)
	}
}

func (s *recSession) closedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *recSession) messages() []recMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recMsg(nil), s.msgs...)
}

// waitClosed waits for the session's Closed call.
func (s *recSession) waitClosed(t testing.TB) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(waitTimeout):
		t.Fatalf("Session.Closed was not called within %v", waitTimeout)
	}
}

// harness is a Server running behind a real HTTP server on 127.0.0.1:0.
type harness struct {
	t       testing.TB
	srv     *Server
	hs      *httptest.Server
	url     string // ws:// or wss:// URL of the upgrade endpoint
	addr    string // host:port
	tlsCfg  *tls.Config
	cancel  context.CancelFunc
	runErr  chan error
	runDone bool // Run has returned (touched by the test goroutine only)

	onOpen func(c *Conn) // runs inside the open function, if set

	sessions chan *recSession // every session, in the order opened
	mu       sync.Mutex
	all      []*recSession
	errs     chan error // every error Upgrade returned
	stopOnce sync.Once
}

type harnessOption func(*harness, *Server)

// withTLS serves the endpoint over TLS: the hijacked connection is then a
// *tls.Conn, which always gets a reader goroutine.
func withTLS() harnessOption { return func(h *harness, _ *Server) { h.tlsCfg = &tls.Config{} } }

// withOpen runs f inside the open function of every upgrade.
func withOpen(f func(c *Conn)) harnessOption { return func(h *harness, _ *Server) { h.onOpen = f } }

// withServer runs f on the Server before Run starts.
func withServer(f func(*Server)) harnessOption { return func(_ *harness, s *Server) { f(s) } }

// newHarness starts a Server with cfg and an HTTP server whose handler
// upgrades every request. Everything is stopped at the end of the test.
func newHarness(t testing.TB, cfg Config, opts ...harnessOption) *harness {
	t.Helper()
	h := &harness{
		t:        t,
		srv:      NewServer(slog.New(slog.DiscardHandler), cfg),
		sessions: make(chan *recSession, 1024),
		errs:     make(chan error, 1024),
	}
	for _, o := range opts {
		o(h, h.srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.runErr = make(chan error, 1)
	go func() { h.runErr <- h.srv.Run(ctx) }()
	t.Cleanup(h.stop)
	select {
	case <-h.srv.Started():
	case err := <-h.runErr:
		t.Fatalf("Run: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("Run did not start")
	}
	h.hs = httptest.NewUnstartedServer(http.HandlerFunc(h.serveWS))
	if h.tlsCfg != nil {
		h.hs.StartTLS()
		h.tlsCfg = h.hs.Client().Transport.(*http.Transport).TLSClientConfig
		h.url = "wss://" + h.hs.Listener.Addr().String() + "/ws"
	} else {
		h.hs.Start()
		h.url = "ws://" + h.hs.Listener.Addr().String() + "/ws"
	}
	h.addr = h.hs.Listener.Addr().String()
	return h
}

func (h *harness) serveWS(w http.ResponseWriter, r *http.Request) {
	err := h.srv.Upgrade(w, r, func(c *Conn) Session {
		s := &recSession{c: c, done: make(chan struct{})}
		h.mu.Lock()
		h.all = append(h.all, s)
		h.mu.Unlock()
		select {
		case h.sessions <- s:
		default: // a stress test opens more than it looks at: never block Upgrade
		}
		if h.onOpen != nil {
			h.onOpen(c)
		}
		return s
	})
	if err != nil {
		select {
		case h.errs <- err:
		default:
		}
		http.Error(w, err.Error(), httpStatus(err))
	}
}

func httpStatus(err error) int {
	switch {
	case errors.Is(err, wspush.ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, wspush.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, wspush.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// stop shuts the server down gracefully, stops Run and checks it returned.
func (h *harness) stop() {
	h.stopOnce.Do(func() {
		if h.hs != nil {
			h.hs.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		_ = h.srv.Shutdown(ctx)
		cancel()
		h.endRun()
	})
}

// endRun cancels Run's context and waits for Run to return, then checks
// that every connection is gone: each session was closed exactly once and
// got no message after that.
func (h *harness) endRun() {
	h.t.Helper()
	if h.runDone {
		return
	}
	h.cancel()
	select {
	case err := <-h.runErr:
		h.runDone = true
		if err != nil {
			h.t.Errorf("Run returned %v", err)
		}
	case <-time.After(waitTimeout):
		h.t.Errorf("Run did not return within %v of its context's end", waitTimeout)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, s := range h.all {
		s.mu.Lock()
		if s.closed != 1 || s.late != 0 {
			h.t.Errorf("session %d: Closed called %d times, %d messages after Closed; want 1 and 0", i, s.closed, s.late)
		}
		s.mu.Unlock()
	}
	if st := h.srv.Stats(); st.Connections != 0 {
		h.t.Errorf("after Run: Stats().Connections = %d, want 0", st.Connections)
	}
}

// session returns the next session opened.
func (h *harness) session(t testing.TB) *recSession {
	t.Helper()
	select {
	case s := <-h.sessions:
		return s
	case <-time.After(waitTimeout):
		t.Fatal("no connection was opened")
		return nil
	}
}

// upgradeErr returns the next error Upgrade returned.
func (h *harness) upgradeErr(t testing.TB) error {
	t.Helper()
	select {
	case err := <-h.errs:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("Upgrade returned no error")
		return nil
	}
}

// closes returns how many connections went with code.
func (h *harness) closes(code int) uint64 { return h.srv.Stats().Closes[code] }

// waitCloses waits until n connections went with code.
func (h *harness) waitCloses(t testing.TB, code int, n uint64) {
	t.Helper()
	eventually(t, waitTimeout, func() bool { return h.closes(code) == n },
		"Stats().Closes[%d] == %d (closes: %v)", code, n, h.srv.Stats().Closes)
}

// dial connects a gorilla client; it is closed at the end of the test.
func (h *harness) dial(t testing.TB, hdr http.Header) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout, TLSClientConfig: h.tlsCfg}
	c, resp, err := d.Dial(h.url, hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
			resp.Body.Close()
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	return c
}

// dialStatus attempts a gorilla handshake and returns the HTTP status.
func (h *harness) dialStatus(t testing.TB, hdr http.Header) (int, http.Header) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout, TLSClientConfig: h.tlsCfg}
	c, resp, err := d.Dial(h.url, hdr)
	if err == nil {
		c.Close()
		return http.StatusSwitchingProtocols, resp.Header
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// readMessage reads one message from a gorilla client, waiting at most
// waitTimeout for it.
func readMessage(c *websocket.Conn) (int, []byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	return c.ReadMessage()
}

// closeCodeOf returns the code of a gorilla close error, or -1.
func closeCodeOf(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// readUntilClose reads messages from a gorilla client until the close
// frame and returns its code and the messages before it.
func readUntilClose(t testing.TB, c *websocket.Conn) (code int, reason string, msgs []string) {
	t.Helper()
	for {
		_, p, err := readMessage(c)
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("read: %v, want a close frame (after %d messages)", err, len(msgs))
			}
			return ce.Code, ce.Text, msgs
		}
		msgs = append(msgs, string(p))
	}
}

// Raw client: hand-written frames for the cases a real client refuses to send.

// testKey is the sample key of RFC 6455 section 1.3 and its accept value.
const (
	testKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	testAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// handshakeRequest is a valid opening handshake for addr.
func handshakeRequest(addr string) string {
	return "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

// dialRaw opens a TCP connection, writes the handshake followed by extra
// in one write, and reads the 101 answer.
func dialRaw(t testing.TB, addr string, extra []byte) *rawConn {
	t.Helper()
	return dialRawWith(t, &net.Dialer{Timeout: waitTimeout}, addr, extra)
}

// dialRawWith is dialRaw with a dialer of the caller's.
func dialRawWith(t testing.TB, d *net.Dialer, addr string, extra []byte) *rawConn {
	t.Helper()
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := nc.Write(append([]byte(handshakeRequest(addr)), extra...)); err != nil {
		t.Fatalf("write handshake: %v", err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read handshake response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d, want 101", resp.StatusCode)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != testAccept {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, testAccept)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
		t.Fatalf("101 headers %v", resp.Header)
	}
	return &rawConn{t: t, nc: nc, br: br}
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// writeFrame writes one masked frame.
func (c *rawConn) writeFrame(fin bool, op byte, payload []byte) {
	c.t.Helper()
	c.write(clientFrame(fin, op, payload))
}

// serverFrame is a frame read from the server.
type serverFrame struct {
	fin     bool
	op      byte
	payload []byte
}

// readFrame reads one frame; server frames must be unmasked and carry no
// RSV bits.
func (c *rawConn) readFrame() (serverFrame, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return serverFrame{}, err
	}
	if hdr[0]&0x70 != 0 || hdr[1]&0x80 != 0 {
		return serverFrame{}, fmt.Errorf("bad server frame header % x", hdr)
	}
	f := serverFrame{fin: hdr[0]&0x80 != 0, op: hdr[0] & 0x0F}
	n := uint64(hdr[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 64<<20 {
		return f, fmt.Errorf("server frame of %d bytes", n)
	}
	f.payload = make([]byte, n)
	_, err := io.ReadFull(c.br, f.payload)
	return f, err
}

// mustReadFrame reads one frame and fails the test on error.
func (c *rawConn) mustReadFrame() serverFrame {
	c.t.Helper()
	f, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

// readClose reads frames until a close frame and returns its code (1005
// for an empty one) and reason.
func (c *rawConn) readClose() (int, string) {
	c.t.Helper()
	for {
		f := c.mustReadFrame()
		if f.op != opClose {
			continue
		}
		if len(f.payload) < 2 {
			return 1005, ""
		}
		return int(binary.BigEndian.Uint16(f.payload)), string(f.payload[2:])
	}
}

// expectEOF checks that the server ends the TCP connection (after a close
// frame, nothing more comes).
func (c *rawConn) expectEOF() {
	c.t.Helper()
	f, err := c.readFrame()
	if err == nil {
		c.t.Fatalf("read a frame (op %#x) after the close frame, want EOF", f.op)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
		return
	}
	c.t.Fatalf("read after close: %v, want EOF", err)
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// testMaskKey is the mask key clientFrame uses.
var testMaskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// clientFrame encodes a masked client frame.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	return encodeFrame(fin, 0, op, true, testMaskKey, payload)
}

// encodeFrame is the test's own frame encoder, written from RFC 6455
// section 5.2 independently of appendHeader and mask.
func encodeFrame(fin bool, rsv, op byte, masked bool, key [4]byte, payload []byte) []byte {
	b0 := rsv<<4 | op&0x0F
	if fin {
		b0 |= 0x80
	}
	var m byte
	if masked {
		m = 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, m|byte(n))
	case n < 1<<16:
		out = append(out, m|126, byte(n>>8), byte(n))
	default:
		out = append(out, m|127)
		for i := 7; i >= 0; i-- {
			out = append(out, byte(uint64(n)>>(8*i)))
		}
	}
	if !masked {
		return append(out, payload...)
	}
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

// contextWithTimeout is context.WithTimeout on a background context.
func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// closePayload is the payload of a close frame.
func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}
