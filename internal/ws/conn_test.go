package ws

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wspush/wspush/internal/netpoll"
)

// TestIOModel checks that each mode runs the I/O model it names: polled
// sockets under epoll, a reader goroutine per connection otherwise.
func TestIOModel(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg)
		c := h.dial(t, nil)
		s := h.session(t)
		if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, p, err := readMessage(c); err != nil || string(p) != "hi" {
			t.Fatalf("echo: %q, %v", p, err)
		}
		polled := pollerConns(h.srv)
		if cfg.Goroutines {
			if h.srv.poller != nil || polled != 0 {
				t.Fatalf("Goroutines: poller %v with %d connections, want none", h.srv.poller != nil, polled)
			}
		} else if netpoll.Supported {
			if polled != 1 {
				t.Fatalf("epoll: poller holds %d connections, want 1", polled)
			}
		}
		if s.c.ID() == 0 || s.c.RemoteAddr().String() != c.LocalAddr().String() {
			t.Fatalf("ID %d, RemoteAddr %v (client %v)", s.c.ID(), s.c.RemoteAddr(), c.LocalAddr())
		}
	})
}

// TestEcho sends many messages of every length encoding and checks the
// echoes come back in order and the binary ones reach the Session.
func TestEcho(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		cfg.ReadLimit = 1 << 17
		// The client writes faster than it reads back: room for every
		// echo, so that this tests framing, not the slow-consumer limit.
		cfg.QueueMaxBytes = 64 << 20
		h := newHarness(t, cfg)
		c := h.dial(t, nil)
		s := h.session(t)

		sizes := []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 70000}
		const n = 300
		msg := func(i int) []byte {
			size := sizes[i%len(sizes)]
			b := []byte(fmt.Sprintf("%04d:", i))
			for len(b) < size {
				b = append(b, 'a'+byte(len(b)%26))
			}
			return b
		}
		// Read concurrently: the echoes must not pile up in the server's queue.
		errc := make(chan error, 1)
		go func() {
			for i := range n {
				typ, p, err := readMessage(c)
				if err != nil {
					errc <- fmt.Errorf("echo %d: %w", i, err)
					return
				}
				if typ != websocket.TextMessage || !bytes.Equal(p, msg(i)) {
					errc <- fmt.Errorf("echo %d: type %d, %d bytes %.20q, want %.20q", i, typ, len(p), p, msg(i))
					return
				}
			}
			errc <- nil
		}()
		for i := range n {
			if err := c.WriteMessage(websocket.TextMessage, msg(i)); err != nil {
				t.Fatal(err)
			}
			if i%50 == 0 {
				if err := c.WriteMessage(websocket.BinaryMessage, []byte{byte(i), 0xFF}); err != nil {
					t.Fatal(err)
				}
			}
		}
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("echoes did not arrive")
		}
		var texts, bins int
		for _, m := range s.messages() {
			if m.binary {
				if m.payload != string([]byte{byte(bins * 50), 0xFF}) {
					t.Fatalf("binary %d = % x", bins, m.payload)
				}
				bins++
				continue
			}
			if m.payload != string(msg(texts)) {
				t.Fatalf("text %d differs", texts)
			}
			texts++
		}
		if texts != n || bins != n/50 {
			t.Fatalf("session got %d texts and %d binaries, want %d and %d", texts, bins, n, n/50)
		}
	})
}

// TestOpenSends checks that frames sent by the open function go out before
// anything else, and that Close from open works.
func TestOpenSends(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg, withOpen(func(c *Conn) {
			c.Send(AppendText(nil, []byte("welcome")))
		}))
		// The client's first frame travels with the handshake: the welcome
		// must still come first.
		rc := dialRaw(t, h.addr, clientFrame(true, opText, []byte("first")))
		for _, want := range []string{"welcome", "first"} {
			if f := rc.mustReadFrame(); f.op != opText || string(f.payload) != want {
				t.Fatalf("frame op %#x %q, want text %q", f.op, f.payload, want)
			}
		}
	})
}

// TestOpenCloses: open may queue frames and close the connection.
func TestOpenCloses(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg, withOpen(func(c *Conn) {
			c.Send(AppendText(nil, []byte("go away")))
			c.Close(4003, "forbidden")
		}))
		c := h.dial(t, nil)
		code, reason, msgs := readUntilClose(t, c)
		if code != 4003 || reason != "forbidden" || len(msgs) != 1 || msgs[0] != "go away" {
			t.Fatalf("got close %d %q after %q", code, reason, msgs)
		}
		h.session(t).waitClosed(t)
		h.waitCloses(t, 4003, 1)
	})
}

// TestEarlyData sends frames in the same TCP write as the handshake
// request: net/http has buffered them, and they must not be lost. A frame
// cut in the middle is completed by later reads.
func TestEarlyData(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg)
		third := clientFrame(true, opText, []byte("three, split across the handshake's segment and a later one"))
		early := bytes.Join([][]byte{
			clientFrame(true, opText, []byte("one")),
			clientFrame(true, opText, []byte("two")),
			third[:5],
		}, nil)
		rc := dialRaw(t, h.addr, early)
		for _, want := range []string{"one", "two"} {
			if f := rc.mustReadFrame(); f.op != opText || string(f.payload) != want {
				t.Fatalf("got op %#x %q, want %q", f.op, f.payload, want)
			}
		}
		rc.write(third[5:])
		if f := rc.mustReadFrame(); string(f.payload) != "three, split across the handshake's segment and a later one" {
			t.Fatalf("got %q", f.payload)
		}
	})
}

// TestFragmented sends a text message in three frames with a ping between
// them, a multi-byte rune cut across two of them.
func TestFragmented(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg)
		rc := dialRaw(t, h.addr, nil)
		s := h.session(t)
		rc.writeFrame(false, opText, []byte("Hello, w"))
		rc.writeFrame(true, opPing, []byte("mid"))
		rc.writeFrame(false, opContinuation, []byte{0xC3}) // first byte of ö
		rc.writeFrame(true, opContinuation, []byte{0xB6, 'r', 'l', 'd'})
		if f := rc.mustReadFrame(); f.op != opPong || string(f.payload) != "mid" {
			t.Fatalf("got op %#x %q, want the pong", f.op, f.payload)
		}
		if f := rc.mustReadFrame(); f.op != opText || !f.fin || string(f.payload) != "Hello, wörld" {
			t.Fatalf("got op %#x %q, want the whole message", f.op, f.payload)
		}
		// A binary message in fragments, one of them empty.
		rc.writeFrame(false, opBinary, []byte{1, 2})
		rc.writeFrame(false, opContinuation, nil)
		rc.writeFrame(true, opContinuation, []byte{3})
		eventually(t, waitTimeout, func() bool { return len(s.messages()) == 2 }, "two messages")
		if m := s.messages()[1]; !m.binary || m.payload != "\x01\x02\x03" {
			t.Fatalf("binary message %+v", m)
		}
	})
}

// TestByteByByte writes frames one byte per TCP write: every read then
// holds a piece of a header or of a payload.
func TestByteByByte(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		cfg.ReadLimit = 1 << 17
		h := newHarness(t, cfg)
		rc := dialRaw(t, h.addr, nil)
		s := h.session(t)
		long := strings.Repeat("0123456789", 30) // 16-bit length
		in := bytes.Join([][]byte{
			clientFrame(true, opText, []byte("short")),
			clientFrame(true, opText, []byte(long)),
			clientFrame(true, opPing, []byte("ping")),
			clientFrame(true, opText, nil),
			clientFrame(true, opBinary, []byte{0, 1, 2}),
		}, nil)
		for i := range in {
			rc.write(in[i : i+1])
		}
		for _, want := range []struct {
			op      byte
			payload string
		}{{opText, "short"}, {opText, long}, {opPong, "ping"}, {opText, ""}} {
			if f := rc.mustReadFrame(); f.op != want.op || string(f.payload) != want.payload {
				t.Fatalf("got op %#x %.20q, want op %#x %.20q", f.op, f.payload, want.op, want.payload)
			}
		}
		eventually(t, waitTimeout, func() bool { return len(s.messages()) == 4 }, "four messages")
		// A 64-bit length frame in odd-sized pieces.
		big := bytes.Repeat([]byte("x"), 70000)
		frame := clientFrame(true, opText, big)
		for len(frame) > 0 {
			n := min(997, len(frame))
			rc.write(frame[:n])
			frame = frame[n:]
		}
		if f := rc.mustReadFrame(); !bytes.Equal(f.payload, big) {
			t.Fatalf("big echo: %d bytes", len(f.payload))
		}
	})
}

// TestPing checks that a ping is answered with a pong carrying its payload.
func TestPing(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg)
		rc := dialRaw(t, h.addr, nil)
		for _, p := range [][]byte{nil, []byte("hello-ping"), bytes.Repeat([]byte{0xAB}, 125)} {
			rc.writeFrame(true, opPing, p)
			if f := rc.mustReadFrame(); f.op != opPong || !f.fin || !bytes.Equal(f.payload, p) {
				t.Fatalf("ping % x: got op %#x % x", p, f.op, f.payload)
			}
		}
		// A pong is ignored.
		rc.writeFrame(true, opPong, []byte("unsolicited"))
		rc.writeFrame(true, opText, []byte("after"))
		if f := rc.mustReadFrame(); f.op != opText || string(f.payload) != "after" {
			t.Fatalf("got op %#x %q", f.op, f.payload)
		}

		// The same with gorilla.
		c := h.dial(t, nil)
		pongs := make(chan string, 1)
		c.SetPongHandler(func(s string) error { pongs <- s; return nil })
		if err := c.WriteControl(websocket.PingMessage, []byte("gorilla"), time.Now().Add(waitTimeout)); err != nil {
			t.Fatal(err)
		}
		go func() { _, _, _ = c.ReadMessage() }() // runs the pong handler; ends when the test closes c
		select {
		case p := <-pongs:
			if p != "gorilla" {
				t.Fatalf("pong %q", p)
			}
		case <-time.After(waitTimeout):
			t.Fatal("no pong")
		}
	})
}

// TestProtocolViolations sends frames that break RFC 6455 and checks the
// close code the server answers with, that it then ends the connection,
// and that the Session got nothing from the bad frames.
func TestProtocolViolations(t *testing.T) {
	tests := []struct {
		name   string
		limit  int
		frames [][]byte
		code   int
	}{
		{"unmasked", 0, [][]byte{encodeFrame(true, 0, opText, false, [4]byte{}, []byte("x"))}, CloseProtocolError},
		{"RSV1", 0, [][]byte{encodeFrame(true, 4, opText, true, testMaskKey, []byte("x"))}, CloseProtocolError},
		{"RSV3", 0, [][]byte{encodeFrame(true, 1, opBinary, true, testMaskKey, []byte("x"))}, CloseProtocolError},
		{"unknown opcode", 0, [][]byte{encodeFrame(true, 0, 0x3, true, testMaskKey, []byte("x"))}, CloseProtocolError},
		{"fragmented ping", 0, [][]byte{clientFrame(false, opPing, []byte("x"))}, CloseProtocolError},
		{"ping over 125 bytes", 0, [][]byte{clientFrame(true, opPing, make([]byte, 126))}, CloseProtocolError},
		{"continuation first", 0, [][]byte{clientFrame(true, opContinuation, []byte("x"))}, CloseProtocolError},
		{"text inside fragments", 0, [][]byte{clientFrame(false, opText, []byte("a")), clientFrame(true, opText, []byte("b"))}, CloseProtocolError},
		{"one-byte close", 0, [][]byte{clientFrame(true, opClose, []byte{1})}, CloseProtocolError},
		{"close code 1006", 0, [][]byte{clientFrame(true, opClose, closePayload(1006, ""))}, CloseProtocolError},
		{"close reason not UTF-8", 0, [][]byte{clientFrame(true, opClose, closePayload(1000, "\xc3"))}, CloseProtocolError},
		{"invalid UTF-8", 0, [][]byte{clientFrame(true, opText, []byte("bad \xff\xfe"))}, CloseInvalidPayload},
		{"invalid UTF-8 in fragments", 0, [][]byte{clientFrame(false, opText, []byte("ok so far")), clientFrame(true, opContinuation, []byte{0xC3})}, CloseInvalidPayload},
		{"over the limit", 1024, [][]byte{clientFrame(true, opBinary, make([]byte, 1025))}, CloseTooLarge},
		{"over the limit in fragments", 1024, [][]byte{clientFrame(false, opText, make([]byte, 600)), clientFrame(true, opContinuation, make([]byte, 600))}, CloseTooLarge},
	}
	forEachMode(t, func(t *testing.T, cfg Config) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cfg := cfg
				cfg.ReadLimit = tt.limit
				h := newHarness(t, cfg)
				rc := dialRaw(t, h.addr, nil)
				s := h.session(t)
				rc.writeFrame(true, opText, []byte("good"))
				if f := rc.mustReadFrame(); string(f.payload) != "good" {
					t.Fatalf("echo %q", f.payload)
				}
				for _, f := range tt.frames {
					rc.write(f)
				}
				if code, _ := rc.readClose(); code != tt.code {
					t.Fatalf("close code %d, want %d", code, tt.code)
				}
				// The server has half-closed: nothing follows its close frame.
				rc.expectEOF()
				// The server failed the connection and reads no more (RFC 6455
				// section 7.1.7); the client ends it, as a browser does on EOF.
				rc.nc.Close()
				s.waitClosed(t)
				h.waitCloses(t, tt.code, 1)
				if msgs := s.messages(); len(msgs) != 1 {
					t.Fatalf("session got %d messages, want only the good one", len(msgs))
				}
			})
		}
	})
}

// TestReadLimitGorilla checks close 1009 with a real client.
func TestReadLimitGorilla(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		cfg.ReadLimit = 1000
		h := newHarness(t, cfg)
		c := h.dial(t, nil)
		if err := c.WriteMessage(websocket.BinaryMessage, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteMessage(websocket.BinaryMessage, make([]byte, 1001)); err != nil {
			t.Fatal(err)
		}
		code, _, msgs := readUntilClose(t, c)
		if code != CloseTooLarge || len(msgs) != 0 {
			t.Fatalf("close %d after %d messages, want 1009", code, len(msgs))
		}
		c.Close() // the server failed the connection and waits for the client to go
		s := h.session(t)
		s.waitClosed(t)
		if msgs := s.messages(); len(msgs) != 1 || len(msgs[0].payload) != 1000 {
			t.Fatalf("session got %d messages", len(msgs))
		}
		h.waitCloses(t, CloseTooLarge, 1)
	})
}

// TestClientClose: the client closes with 1000, the server echoes 1000,
// tears down once, and refuses later Sends.
func TestClientClose(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg)
		c := h.dial(t, nil)
		s := h.session(t)
		if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(CloseNormal, "bye")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); closeCodeOf(err) != CloseNormal {
			t.Fatalf("read after close: %v, want close 1000", err)
		}
		s.waitClosed(t)
		h.waitCloses(t, CloseNormal, 1)
		if s.c.Send(AppendText(nil, []byte("late"))) || s.c.SendText([]byte("late")) {
			t.Fatal("Send after close returned true")
		}
		s.c.Close(CloseGoingAway, "again") // no effect
		if st := h.srv.Stats(); st.Connections != 0 || st.Accepted != 1 || st.Overflows != 0 {
			t.Fatalf("stats %+v", st)
		}
		h.stop()
		if n := s.closedCount(); n != 1 {
			t.Fatalf("Closed called %d times", n)
		}
	})
}

// TestClientCloseRaw: an empty close frame is answered with 1000 and the
// server then ends the TCP connection.
func TestClientCloseRaw(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg)
		rc := dialRaw(t, h.addr, nil)
		s := h.session(t)
		rc.writeFrame(true, opClose, nil)
		if code, _ := rc.readClose(); code != CloseNormal {
			t.Fatalf("close %d, want 1000", code)
		}
		rc.expectEOF()
		s.waitClosed(t)
		h.waitCloses(t, CloseNormal, 1)
	})
}

// TestServerClose: Close sends the queued frames, then the close frame;
// the client's answer completes the handshake.
func TestServerClose(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg)
		c := h.dial(t, nil)
		s := h.session(t)
		for i := range 10 {
			if !s.c.SendText([]byte(fmt.Sprint(i))) {
				t.Fatal("Send failed")
			}
		}
		s.c.Close(4003, "forbidden")
		s.c.Close(CloseNormal, "second call does nothing")
		if s.c.SendText([]byte("late")) {
			t.Fatal("Send after Close returned true")
		}
		code, reason, msgs := readUntilClose(t, c)
		if code != 4003 || reason != "forbidden" || strings.Join(msgs, ",") != "0,1,2,3,4,5,6,7,8,9" {
			t.Fatalf("close %d %q after %q", code, reason, msgs)
		}
		s.waitClosed(t)
		h.waitCloses(t, 4003, 1)
	})
}

// TestCloseTimeout: a client that never answers the close frame is cut
// off after the close timeout.
func TestCloseTimeout(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		cfg.CloseTimeout = 200 * time.Millisecond
		h := newHarness(t, cfg)
		rc := dialRaw(t, h.addr, nil)
		s := h.session(t)
		start := time.Now()
		s.c.Close(4003, "bye")
		if code, _ := rc.readClose(); code != 4003 {
			t.Fatalf("close %d", code)
		}
		rc.expectEOF()
		s.waitClosed(t) // while the client still holds its socket open
		if d := time.Since(start); d < cfg.CloseTimeout {
			t.Fatalf("cut off after %v, before the close timeout", d)
		}
		h.waitCloses(t, 4003, 1)
	})
}

// TestTLS runs a connection over TLS: not plain TCP, so it has a reader
// goroutine even when the server polls.
func TestTLS(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg, withTLS())
		c := h.dial(t, nil)
		s := h.session(t)
		for i := range 20 {
			msg := strings.Repeat(fmt.Sprint(i), 1000*i)
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			if _, p, err := readMessage(c); err != nil || string(p) != msg {
				t.Fatalf("echo %d: %d bytes, %v", i, len(p), err)
			}
		}
		if n := pollerConns(h.srv); n != 0 {
			t.Fatalf("a TLS connection is polled (%d)", n)
		}
		done := make(chan error, 1)
		go func() {
			ctx, cancel := contextWithTimeout(waitTimeout)
			defer cancel()
			done <- h.srv.Shutdown(ctx)
		}()
		if code, _, _ := readUntilClose(t, c); code != CloseGoingAway {
			t.Fatalf("close %d, want 1001", code)
		}
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		s.waitClosed(t)
	})
}

// TestConcurrentSend sends from many goroutines at once while the client
// reads: every frame arrives once, and each sender's frames in order.
func TestConcurrentSend(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg)
		c := h.dial(t, nil)
		s := h.session(t)
		const senders, each = 8, 200
		var wg sync.WaitGroup
		for g := range senders {
			wg.Go(func() {
				for i := range each {
					if !s.c.Send(AppendText(nil, []byte(fmt.Sprintf("%d %d", g, i)))) {
						t.Errorf("Send %d %d failed", g, i)
						return
					}
				}
			})
		}
		next := make([]int, senders)
		for range senders * each {
			_, p, err := readMessage(c)
			if err != nil {
				t.Fatal(err)
			}
			var g, i int
			if _, err := fmt.Sscanf(string(p), "%d %d", &g, &i); err != nil || next[g] != i {
				t.Fatalf("got %q, want sender %d's frame %d", p, g, next[g])
			}
			next[g]++
		}
		wg.Wait()
	})
}

// TestUpgradeRefusedWhenStopped: no upgrade before Run or after Shutdown.
func TestUpgradeRefusedWhenStopped(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h := newHarness(t, cfg)
		ctx, cancel := contextWithTimeout(waitTimeout)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if !h.srv.Draining() {
			t.Fatal("Draining() = false after Shutdown")
		}
		if status, _ := h.dialStatus(t, nil); status != http.StatusServiceUnavailable {
			t.Fatalf("status %d after Shutdown, want 503", status)
		}
		_ = h.upgradeErr(t)
	})
}

// TestReadSizes sends frames whose bytes fill the pooled read buffer and
// the per-event read budget exactly, and by one byte more or less: a read
// that fills the buffer is followed by one that finds nothing (EAGAIN),
// which must re-arm the socket, not end the connection.
func TestReadSizes(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		cfg.ReadLimit = 1 << 20
		h := newHarness(t, cfg)
		rc := dialRaw(t, h.addr, nil)
		for _, total := range []int{readBufSize - 1, readBufSize, readBufSize + 1, 2 * readBufSize, 4 * readBufSize, 4*readBufSize + 1, 5 * readBufSize} {
			size := total - 14 // 64-bit length and mask: 14 header bytes
			if total < 65536+14 {
				size = total - 8 // 16-bit length and mask
			}
			payload := bytes.Repeat([]byte{'a' + byte(total%26)}, size)
			frame := clientFrame(true, opBinary, payload)
			if len(frame) != total {
				t.Fatalf("frame of %d bytes, want %d", len(frame), total)
			}
			rc.write(frame)
			rc.writeFrame(true, opPing, []byte(fmt.Sprint(total)))
			if f := rc.mustReadFrame(); f.op != opPong || string(f.payload) != fmt.Sprint(total) {
				t.Fatalf("after a %d-byte frame: op %#x %q", total, f.op, f.payload)
			}
		}
		s := h.session(t)
		if n := len(s.messages()); n != 7 {
			t.Fatalf("%d messages, want 7", n)
		}
	})
}

// TestHalfCloseGetsReplies: a peer that sends messages and then ends its
// half of the connection, without a close frame, still reads every reply
// queued for what it sent, then a close frame and EOF. The replies are
// more than the sockets hold, so most wait in the queue when the server
// reads the end.
func TestHalfCloseGetsReplies(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		h, c, _ := halfClosed(t, halfCloseConfig(cfg), 512)
		readEchoes(t, c, 512, 0)
		if code, _ := c.readClose(); code != CloseNormal {
			t.Fatalf("close code %d, want %d", code, CloseNormal)
		}
		c.expectEOF()
		waitGoneAs1006(t, h)
	})
}

// TestHalfCloseGetsRepliesTLS: the same over TLS, whose connections have
// a reader goroutine; the peer's end is its close_notify alert, with or
// without the TCP FIN after it.
func TestHalfCloseGetsRepliesTLS(t *testing.T) {
	for _, fin := range []bool{false, true} {
		t.Run(fmt.Sprintf("fin=%v", fin), func(t *testing.T) {
			h := newHarness(t, halfCloseConfig(Config{}), withTLS())
			tcp, err := smallReceiveBuffer().Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tcp.Close() })
			cfg := h.tlsCfg.Clone()
			cfg.ServerName = "127.0.0.1"
			tc := tls.Client(tcp, cfg)
			_ = tc.SetDeadline(time.Now().Add(waitTimeout))
			if _, err := io.WriteString(tc, handshakeRequest(h.addr)); err != nil {
				t.Fatal(err)
			}
			c := &rawConn{t: t, nc: tc, br: bufio.NewReader(tc)}
			if resp, err := http.ReadResponse(c.br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("handshake: %v %v", resp, err)
			}
			writeEchoes(t, h, c, 512, func() error {
				if err := tc.CloseWrite(); err != nil || !fin {
					return err
				}
				return tcp.(*net.TCPConn).CloseWrite()
			})
			readEchoes(t, c, 512, 0)
			if code, _ := c.readClose(); code != CloseNormal {
				t.Fatalf("close code %d, want %d", code, CloseNormal)
			}
			waitGoneAs1006(t, h)
		})
	}
}

// TestHalfCloseNotReading: a peer that half-closes with replies pending
// and then reads nothing is cut off by the write timeout, and its session
// ends: the drain holds nothing for longer.
func TestHalfCloseNotReading(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		cfg = halfCloseConfig(cfg)
		cfg.WriteTimeout = time.Second
		h, _, s := halfClosed(t, cfg, 256)
		s.waitClosed(t)
		waitGoneAs1006(t, h)
	})
}

// TestHalfCloseSlowReader: the write timeout bounds the whole drain, not
// one write: a peer that half-closes and then reads steadily but too
// slowly to take its queue in time is cut off.
func TestHalfCloseSlowReader(t *testing.T) {
	forEachMode(t, func(t *testing.T, cfg Config) {
		cfg = halfCloseConfig(cfg)
		cfg.WriteTimeout = time.Second
		const n = 256 // 8 MiB: 5 s at the pace below
		h, c, _ := halfClosed(t, cfg, n)
		if got := readEchoes(t, c, n, 20*time.Millisecond); got == n {
			t.Fatalf("read all %d echoes at a pace of 5 s: the drain was not bounded", n)
		}
		waitGoneAs1006(t, h)
	})
}

// halfClosed starts a server with cfg and a peer with a small receive
// buffer that sends n messages with writeEchoes and half-closes over TCP.
func halfClosed(t *testing.T, cfg Config, n int) (*harness, *rawConn, *recSession) {
	t.Helper()
	h := newHarness(t, cfg)
	c := dialRawWith(t, smallReceiveBuffer(), h.addr, nil)
	s := writeEchoes(t, h, c, n, func() error { return c.nc.(*net.TCPConn).CloseWrite() })
	return h, c, s
}

// waitGoneAs1006 waits until the half-close tests' connection is gone,
// and checks that it counts as closed without a close frame from the peer.
func waitGoneAs1006(t *testing.T, h *harness) {
	t.Helper()
	eventually(t, waitTimeout, func() bool { return h.srv.Stats().Connections == 0 }, "the connection is still open")
	if got := h.closes(1006); got != 1 {
		t.Fatalf("closes with 1006: %d, want 1 (the peer sent no close frame)", got)
	}
}

// halfCloseConfig makes room in the queue for the half-close tests'
// echoes, and a write timeout that a loaded machine does not reach before
// they are sent (those that test it set their own).
func halfCloseConfig(cfg Config) Config {
	cfg.QueueMaxBytes = 64 << 20
	cfg.WriteTimeout = time.Minute
	return cfg
}

// writeEchoes sends n messages of 32 KiB without reading, so that their
// echoes pile up in the server's queue, ends the peer's half with
// closeWrite, and waits until the server has read the end (or, if the
// write timeout cut the peer off meanwhile, torn the connection down). It
// returns the connection's session.
func writeEchoes(t *testing.T, h *harness, c *rawConn, n int, closeWrite func() error) *recSession {
	t.Helper()
	payload := bytes.Repeat([]byte("x"), 32<<10)
	for i := range n {
		copy(payload, fmt.Sprintf("%08d", i))
		_ = c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
		if _, err := c.nc.Write(clientFrame(true, opText, payload)); err != nil {
			break // cut off by a short write timeout: the test says what it expects
		}
	}
	_ = closeWrite()
	s := h.session(t)
	eventually(t, waitTimeout, func() bool {
		s.c.readMu.Lock()
		defer s.c.readMu.Unlock()
		return s.c.eof || s.c.torn
	}, "the server did not see the end of the peer's half")
	return s
}

// readEchoes reads up to n echoes of writeEchoes' messages, one per pace,
// and returns how many came before the connection ended; with pace 0 it
// requires all n.
func readEchoes(t *testing.T, c *rawConn, n int, pace time.Duration) int {
	t.Helper()
	for i := range n {
		if pace > 0 {
			time.Sleep(pace) // a slow reader's pace, not a wait for something
		}
		f, err := c.readFrame()
		if err != nil {
			if pace > 0 {
				return i
			}
			t.Fatalf("echo %d of %d: %v", i, n, err)
		}
		if want := fmt.Sprintf("%08d", i); f.op != opText || len(f.payload) != 32<<10 || string(f.payload[:8]) != want {
			t.Fatalf("frame %d: op %#x, %d bytes starting %q, want the echo of %s", i, f.op, len(f.payload), f.payload[:min(8, len(f.payload))], want)
		}
	}
	return n
}

// smallReceiveBuffer is a dialer whose sockets have a small receive
// buffer: what the server sends them backs up into its queue.
func smallReceiveBuffer() *net.Dialer {
	return &net.Dialer{Timeout: waitTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
}
