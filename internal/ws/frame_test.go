package ws

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseHeader(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		in      []byte
		want    header
		wantN   int
		wantErr bool
	}{
		{"empty", nil, header{}, 0, false},
		{"one byte", []byte{0x81}, header{}, 0, false},
		{"7-bit unmasked", []byte{0x81, 5}, header{fin: true, op: opText, length: 5}, 2, false},
		{"7-bit zero", []byte{0x82, 0}, header{fin: true, op: opBinary}, 2, false},
		{"7-bit 125", []byte{0x82, 125}, header{fin: true, op: opBinary, length: 125}, 2, false},
		{"7-bit masked", []byte{0x81, 0x80 | 5, 1, 2, 3, 4}, header{fin: true, op: opText, masked: true, mask: key, length: 5}, 6, false},
		{"7-bit masked, key partial", []byte{0x81, 0x80 | 5, 1, 2, 3}, header{}, 0, false},
		{"not fin", []byte{0x01, 0x80, 1, 2, 3, 4}, header{op: opText, masked: true, mask: key}, 6, false},
		{"continuation", []byte{0x80, 0x80 | 3, 1, 2, 3, 4}, header{fin: true, op: opContinuation, masked: true, mask: key, length: 3}, 6, false},
		{"16-bit", []byte{0x82, 126, 0x01, 0x00}, header{fin: true, op: opBinary, length: 256}, 4, false},
		{"16-bit 126", []byte{0x82, 126, 0, 126}, header{fin: true, op: opBinary, length: 126}, 4, false},
		{"16-bit max", []byte{0x82, 126, 0xFF, 0xFF}, header{fin: true, op: opBinary, length: 65535}, 4, false},
		{"16-bit masked", []byte{0x82, 0x80 | 126, 0xFF, 0xFF, 1, 2, 3, 4}, header{fin: true, op: opBinary, masked: true, mask: key, length: 65535}, 8, false},
		{"16-bit partial length", []byte{0x82, 126, 0xFF}, header{}, 0, false},
		{"16-bit masked, key partial", []byte{0x82, 0x80 | 126, 0xFF, 0xFF, 1}, header{}, 0, false},
		{"64-bit", cat([]byte{0x82, 127}, u64(65536)), header{fin: true, op: opBinary, length: 65536}, 10, false},
		{"64-bit masked", cat([]byte{0x82, 0x80 | 127}, u64(1<<40), key[:]), header{fin: true, op: opBinary, masked: true, mask: key, length: 1 << 40}, 14, false},
		{"64-bit largest", cat([]byte{0x82, 127}, u64(math.MaxInt64)), header{fin: true, op: opBinary, length: math.MaxInt64}, 10, false},
		{"64-bit partial length", cat([]byte{0x82, 127}, u64(65536)[:7]), header{}, 0, false},
		{"64-bit masked, key partial", cat([]byte{0x82, 0x80 | 127}, u64(65536), key[:3]), header{}, 0, false},
		{"64-bit MSB set", cat([]byte{0x82, 127}, u64(1<<63)), header{}, 0, true},
		{"64-bit all ones", cat([]byte{0x82, 0x80 | 127}, u64(math.MaxUint64), key[:]), header{}, 0, true},
		{"RSV1", []byte{0x81 | 0x40, 0x80}, header{}, 0, true},
		{"RSV2", []byte{0x81 | 0x20, 0x80}, header{}, 0, true},
		{"RSV3", []byte{0x81 | 0x10, 0x80}, header{}, 0, true},
		{"RSV with partial header", []byte{0xC1, 0x80 | 127}, header{}, 0, true},
		{"opcode 3", []byte{0x83, 0x80}, header{}, 0, true},
		{"opcode 7", []byte{0x87, 0x80}, header{}, 0, true},
		{"opcode 0xB", []byte{0x8B, 0x80}, header{}, 0, true},
		{"opcode 0xF", []byte{0x8F, 0x80}, header{}, 0, true},
		{"ping", []byte{0x89, 0x80 | 4, 1, 2, 3, 4}, header{fin: true, op: opPing, masked: true, mask: key, length: 4}, 6, false},
		{"pong 125", []byte{0x8A, 0x80 | 125, 1, 2, 3, 4}, header{fin: true, op: opPong, masked: true, mask: key, length: 125}, 6, false},
		{"close", []byte{0x88, 0x80 | 2, 1, 2, 3, 4}, header{fin: true, op: opClose, masked: true, mask: key, length: 2}, 6, false},
		{"fragmented ping", []byte{0x09, 0x80, 1, 2, 3, 4}, header{}, 0, true},
		{"fragmented close", []byte{0x08, 0x80}, header{}, 0, true},
		{"ping over 125 (16-bit)", []byte{0x89, 0x80 | 126, 0, 126}, header{}, 0, true},
		{"close over 125 (16-bit)", []byte{0x88, 126, 0xFF, 0xFF}, header{}, 0, true},
		{"pong over 125 (64-bit)", cat([]byte{0x8A, 127}, u64(200)), header{}, 0, true},
		{"ping 125 in 16-bit form", []byte{0x89, 126, 0, 125}, header{fin: true, op: opPing, length: 125}, 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := parseHeader(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errProtocol) {
					t.Fatalf("parseHeader(% x) error = %v, want errProtocol", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseHeader(% x): %v", tt.in, err)
			}
			if n != tt.wantN {
				t.Fatalf("parseHeader(% x) n = %d, want %d", tt.in, n, tt.wantN)
			}
			if n > 0 && h != tt.want {
				t.Fatalf("parseHeader(% x) = %+v, want %+v", tt.in, h, tt.want)
			}
		})
	}
}

// TestParseHeaderPrefixes checks that every proper prefix of a valid
// header asks for more bytes, and that bytes after the header are ignored.
func TestParseHeaderPrefixes(t *testing.T) {
	key := [4]byte{9, 8, 7, 6}
	for _, size := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		for _, masked := range []bool{false, true} {
			frame := encodeFrame(true, 0, opBinary, masked, key, make([]byte, size))
			hl := len(frame) - size
			for i := range hl {
				if _, n, err := parseHeader(frame[:i]); n != 0 || err != nil {
					t.Fatalf("size %d masked %v: prefix %d: n=%d err=%v, want 0, nil", size, masked, i, n, err)
				}
			}
			h, n, err := parseHeader(frame)
			if err != nil || n != hl || h.length != int64(size) || h.masked != masked || (masked && h.mask != key) {
				t.Fatalf("size %d masked %v: %+v n=%d err=%v, want header of %d bytes", size, masked, h, n, err, hl)
			}
		}
	}
}

func TestAppendHeaderRoundTrip(t *testing.T) {
	lengths := []int{0, 1, 2, 125, 126, 127, 1000, 65534, 65535, 65536, 65537, 1 << 20, math.MaxInt}
	if over32 := uint64(1<<32 + 7); strconv.IntSize == 64 {
		lengths = append(lengths, int(over32)) // a 64-bit length that is not all ones
	}
	for _, op := range []byte{opContinuation, opText, opBinary} {
		for _, fin := range []bool{true, false} {
			for _, l := range lengths {
				prefix := []byte("prefix")
				b := appendHeader(prefix, fin, op, l)
				if !bytes.Equal(b[:len(prefix)], []byte("prefix")) {
					t.Fatalf("appendHeader clobbered dst")
				}
				hdr := b[len(prefix):]
				if len(hdr) != headerLen(l) {
					t.Fatalf("length %d: appendHeader wrote %d bytes, headerLen says %d", l, len(hdr), headerLen(l))
				}
				h, n, err := parseHeader(hdr)
				if err != nil || n != len(hdr) {
					t.Fatalf("length %d: parseHeader(% x) n=%d err=%v", l, hdr, n, err)
				}
				want := header{fin: fin, op: op, length: int64(l)}
				if h != want {
					t.Fatalf("length %d: round trip %+v, want %+v", l, h, want)
				}
			}
		}
	}
	// Control frames: the lengths they may carry.
	for _, op := range []byte{opClose, opPing, opPong} {
		for _, l := range []int{0, 2, 125} {
			h, n, err := parseHeader(appendHeader(nil, true, op, l))
			if err != nil || n != 2 || h != (header{fin: true, op: op, length: int64(l)}) {
				t.Fatalf("op %#x length %d: %+v n=%d err=%v", op, l, h, n, err)
			}
		}
	}
	for l, want := range map[int]int{0: 2, 125: 2, 126: 4, 65535: 4, 65536: 10, math.MaxInt: 10} {
		if got := headerLen(l); got != want {
			t.Errorf("headerLen(%d) = %d, want %d", l, got, want)
		}
	}
}

// maskRef is the byte-by-byte masking of RFC 6455 section 5.3.
func maskRef(b []byte, key [4]byte) {
	for i := range b {
		b[i] ^= key[i%4]
	}
}

func TestMask(t *testing.T) {
	keys := [][4]byte{{0, 0, 0, 0}, {0xFF, 0xFF, 0xFF, 0xFF}, {1, 2, 3, 4}, {0x37, 0xfa, 0x21, 0x3d}, {0x80, 0x00, 0x7F, 0x01}}
	for _, key := range keys {
		for n := 0; n <= 40; n++ {
			// off moves the slice across alignments inside a larger buffer,
			// and checks that mask touches nothing outside it.
			for off := range 9 {
				buf := make([]byte, off+n+8)
				for i := range buf {
					buf[i] = byte(i*7 + n)
				}
				want := append([]byte(nil), buf...)
				maskRef(want[off:off+n], key)
				mask(buf[off:off+n], key)
				if !bytes.Equal(buf, want) {
					t.Fatalf("key % x len %d offset %d:\n got % x\nwant % x", key, n, off, buf, want)
				}
				mask(buf[off:off+n], key) // masking twice restores the input
				maskRef(want[off:off+n], key)
				if !bytes.Equal(buf, want) {
					t.Fatalf("key % x len %d offset %d: mask is not an involution", key, n, off)
				}
			}
		}
	}
	// Rotated keys: a payload masked in two pieces, the second with the key
	// rotated by the first piece's length, equals the payload masked whole.
	key := [4]byte{0xA1, 0xB2, 0xC3, 0xD4}
	for split := 0; split <= 40; split++ {
		whole := bytes.Repeat([]byte("abcdefghij"), 4)
		pieces := append([]byte(nil), whole...)
		maskRef(whole, key)
		var rot [4]byte
		for i := range rot {
			rot[i] = key[(i+split)%4]
		}
		mask(pieces[:split], key)
		mask(pieces[split:], rot)
		if !bytes.Equal(whole, pieces) {
			t.Fatalf("split %d: piecewise mask differs", split)
		}
	}
}

func TestStartFinishText(t *testing.T) {
	for _, size := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte("x"), size)
		for i := range payload {
			payload[i] = 'a' + byte(i%26)
		}
		for _, dst := range [][]byte{nil, make([]byte, 0, size+maxHeaderLen)} {
			b := StartText(dst)
			b = append(b, payload...)
			frame := FinishText(b)
			h, n, err := parseHeader(frame)
			if err != nil || n == 0 {
				t.Fatalf("size %d: parseHeader: n=%d err=%v", size, n, err)
			}
			if !h.fin || h.op != opText || h.masked || h.length != int64(size) || n != headerLen(size) {
				t.Fatalf("size %d: header %+v n=%d", size, h, n)
			}
			if len(frame) != n+size || !bytes.Equal(frame[n:], payload) {
				t.Fatalf("size %d: payload differs", size)
			}
			if !bytes.Equal(frame, AppendText(nil, payload)) {
				t.Fatalf("size %d: FinishText and AppendText differ", size)
			}
			if cap(dst) > 0 && &frame[len(frame)-1] != &dst[:cap(dst)][cap(dst)-1] {
				t.Fatalf("size %d: FinishText copied the payload", size)
			}
		}
	}
}

func TestCloseFrame(t *testing.T) {
	parse := func(t *testing.T, f []byte) (int, string) {
		t.Helper()
		h, n, err := parseHeader(f)
		if err != nil || n != 2 || h.op != opClose || !h.fin || h.masked {
			t.Fatalf("close frame % x: %+v n=%d err=%v", f, h, n, err)
		}
		if int(h.length) != len(f)-n || h.length > maxControlPayload || h.length < 2 {
			t.Fatalf("close frame payload length %d, frame %d bytes", h.length, len(f))
		}
		return int(binary.BigEndian.Uint16(f[n:])), string(f[n+2:])
	}
	tests := []struct {
		name   string
		code   int
		reason string
		want   string
	}{
		{"no reason", CloseNormal, "", ""},
		{"short", CloseGoingAway, "server shutting down", "server shutting down"},
		{"123 bytes fit", CloseSlowConsumer, strings.Repeat("a", 123), strings.Repeat("a", 123)},
		{"124 bytes cut", CloseSlowConsumer, strings.Repeat("a", 124), strings.Repeat("a", 123)},
		{"long ascii", CloseProtocolError, strings.Repeat("abc", 100), strings.Repeat("abc", 41)},
		// 2-byte runes: 61 fit (122 bytes); the 62nd would straddle byte 123.
		{"2-byte runes", CloseTooLarge, strings.Repeat("é", 100), strings.Repeat("é", 61)},
		// 3-byte runes: 41 fit exactly (123 bytes).
		{"3-byte runes", CloseTooLarge, strings.Repeat("€", 100), strings.Repeat("€", 41)},
		// 4-byte runes: 30 fit (120 bytes); the 31st would straddle.
		{"4-byte runes", CloseTooLarge, strings.Repeat("😀", 100), strings.Repeat("😀", 30)},
		{"ascii then runes", CloseTooLarge, "a" + strings.Repeat("😀", 40), "a" + strings.Repeat("😀", 30)},
		{"ab then runes", CloseTooLarge, "ab" + strings.Repeat("😀", 40), "ab" + strings.Repeat("😀", 30)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason := parse(t, closeFrame(tt.code, tt.reason))
			if code != tt.code || reason != tt.want {
				t.Fatalf("closeFrame(%d, %d bytes) = %d, %q (%d bytes); want %q", tt.code, len(tt.reason), code, reason, len(reason), tt.want)
			}
			if !utf8.ValidString(reason) || !strings.HasPrefix(tt.reason, reason) {
				t.Fatalf("reason %q is not a valid prefix", reason)
			}
		})
	}
}

func TestValidCloseCode(t *testing.T) {
	valid := []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4001, 4999}
	invalid := []int{0, 999, 1004, 1005, 1006, 1012, 1015, 2000, 2999, 5000, 65535}
	for _, c := range valid {
		if !validCloseCode(c) {
			t.Errorf("validCloseCode(%d) = false", c)
		}
	}
	for _, c := range invalid {
		if validCloseCode(c) {
			t.Errorf("validCloseCode(%d) = true", c)
		}
	}
}

func TestConsume(t *testing.T) {
	frames := func() [][]byte { return [][]byte{[]byte("abc"), {}, []byte("de"), []byte("fghi")} }
	join := func(f [][]byte) string { return string(bytes.Join(f, nil)) }
	all := "abcdefghi"
	for n := 0; n <= len(all); n++ {
		f := frames()
		orig := [][]byte{f[0], f[1], f[2], f[3]}
		got := consume(f, n)
		if join(got) != all[n:] {
			t.Fatalf("consume(%d) left %q, want %q", n, join(got), all[n:])
		}
		if len(got) > 0 && len(got[0]) == 0 && n < len(all) {
			t.Fatalf("consume(%d) left an empty first frame", n)
		}
		for i, o := range orig { // the frames' bytes are shared: never modified
			if string(o) != string(frames()[i]) {
				t.Fatalf("consume modified frame %d", i)
			}
		}
	}
}

// Conn.feed without a socket: the path the fuzz target and the parser tests
// drive. The Conn writes into a sinkConn.

// sinkConn is a net.Conn that records what is written and reads nothing.
type sinkConn struct {
	mu     sync.Mutex
	out    bytes.Buffer
	closed bool
}

func (s *sinkConn) Read([]byte) (int, error) { return 0, io.EOF }
func (s *sinkConn) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	return s.out.Write(b)
}

func (s *sinkConn) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}
func (s *sinkConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *sinkConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *sinkConn) SetDeadline(time.Time) error      { return nil }
func (s *sinkConn) SetReadDeadline(time.Time) error  { return nil }
func (s *sinkConn) SetWriteDeadline(time.Time) error { return nil }

// feedResult is everything observable after bytes went through Conn.feed.
type feedResult struct {
	msgs      []recMsg
	closeCode int    // 0: the connection is still open
	out       []byte // what the Conn wrote: pongs and close frames
}

func (r feedResult) String() string {
	return fmt.Sprintf("msgs=%d close=%d out=% x", len(r.msgs), r.closeCode, r.out)
}

// runFeed feeds data to a socketless Conn in chunks of chunk bytes (all at
// once when chunk <= 0) and returns what came out.
func runFeed(data []byte, chunk int, readLimit int) feedResult {
	srv := NewServer(slog.New(slog.DiscardHandler), Config{
		ReadLimit:        readLimit,
		QueueMaxMessages: 1 << 30, // no overflow: the writer's speed must not matter
		QueueMaxBytes:    math.MaxInt,
	})
	sink := &sinkConn{}
	c := &Conn{srv: srv, nc: sink, fd: -1, id: 1}
	rec := &recSession{c: nil, done: make(chan struct{})}
	c.session = recordOnly{rec}
	if chunk <= 0 {
		chunk = len(data)
	}
	for len(data) > 0 {
		n := min(chunk, len(data))
		b := append([]byte(nil), data[:n]...) // feed unmasks in place: give it a buffer of its own
		data = data[n:]
		c.readMu.Lock()
		c.feed(b)
		c.readMu.Unlock()
	}
	srv.wg.Wait() // writers
	c.mu.Lock()
	code := int(c.closeCode)
	c.mu.Unlock()
	sink.mu.Lock()
	defer sink.mu.Unlock()
	return feedResult{msgs: rec.messages(), closeCode: code, out: append([]byte(nil), sink.out.Bytes()...)}
}

// recordOnly is a recSession that does not echo.
type recordOnly struct{ s *recSession }

func (r recordOnly) HandleMessage(binary bool, payload []byte) {
	r.s.mu.Lock()
	r.s.msgs = append(r.s.msgs, recMsg{binary, string(payload)})
	r.s.mu.Unlock()
}
func (r recordOnly) Closed() {}

func sameFeed(a, b feedResult) bool {
	if a.closeCode != b.closeCode || !bytes.Equal(a.out, b.out) || len(a.msgs) != len(b.msgs) {
		return false
	}
	for i := range a.msgs {
		if a.msgs[i] != b.msgs[i] {
			return false
		}
	}
	return true
}

// pongOf is the frame the server answers a ping carrying payload with.
func pongOf(payload []byte) []byte {
	return append(appendHeader(nil, true, opPong, len(payload)), payload...)
}

func TestFeed(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	big := bytes.Repeat([]byte("0123456789"), 7000) // 70000 bytes: 64-bit length
	tests := []struct {
		name  string
		in    []byte
		limit int
		msgs  []recMsg
		code  int
		out   []byte
	}{
		{
			name: "text and binary",
			in:   cat(clientFrame(true, opText, []byte("hi")), clientFrame(true, opBinary, []byte{0, 1, 2})),
			msgs: []recMsg{{false, "hi"}, {true, "\x00\x01\x02"}},
		},
		{
			name:  "64-bit length",
			in:    clientFrame(true, opBinary, big),
			limit: 1 << 17,
			msgs:  []recMsg{{true, string(big)}},
		},
		{
			name: "fragments with a ping between",
			in: cat(clientFrame(false, opText, []byte("w")), clientFrame(true, opPing, []byte("p")),
				clientFrame(false, opContinuation, []byte{0xC3}), clientFrame(true, opContinuation, []byte{0xB6, '!'})),
			msgs: []recMsg{{false, "wö!"}},
			out:  pongOf([]byte("p")),
		},
		{
			name: "pong ignored",
			in:   cat(clientFrame(true, opPong, []byte("x")), clientFrame(true, opText, []byte("a"))),
			msgs: []recMsg{{false, "a"}},
		},
		{
			name: "close echoed, the rest ignored",
			in:   cat(clientFrame(true, opClose, closePayload(CloseNormal, "bye")), clientFrame(true, opText, []byte("late"))),
			code: CloseNormal,
			out:  closeFrame(CloseNormal, ""),
		},
		{
			name: "empty close",
			in:   clientFrame(true, opClose, nil),
			code: CloseNormal,
			out:  closeFrame(CloseNormal, ""),
		},
		{
			name: "close 4000 echoed",
			in:   clientFrame(true, opClose, closePayload(4000, "")),
			code: 4000,
			out:  closeFrame(4000, ""),
		},
		{
			name: "unmasked",
			in:   encodeFrame(true, 0, opText, false, [4]byte{}, []byte("x")),
			code: CloseProtocolError,
			out:  closeFrame(CloseProtocolError, "protocol error: client frames must be masked"),
		},
		{
			name: "rsv after a good frame",
			in:   cat(clientFrame(true, opText, []byte("ok")), encodeFrame(true, 4, opText, true, testMaskKey, []byte("x"))),
			msgs: []recMsg{{false, "ok"}},
			code: CloseProtocolError,
			out:  closeFrame(CloseProtocolError, "protocol error: invalid frame"),
		},
		{
			name: "continuation without a message",
			in:   clientFrame(true, opContinuation, []byte("x")),
			code: CloseProtocolError,
			out:  closeFrame(CloseProtocolError, "protocol error: continuation without a message"),
		},
		{
			name: "new message inside a fragmented one",
			in:   cat(clientFrame(false, opText, []byte("a")), clientFrame(true, opText, []byte("b"))),
			code: CloseProtocolError,
			out:  closeFrame(CloseProtocolError, "protocol error: new message inside a fragmented one"),
		},
		{
			name: "one-byte close payload",
			in:   clientFrame(true, opClose, []byte{3}),
			code: CloseProtocolError,
			out:  closeFrame(CloseProtocolError, "protocol error: bad close frame"),
		},
		{
			name: "close code 1005 is not for the wire",
			in:   clientFrame(true, opClose, closePayload(1005, "")),
			code: CloseProtocolError,
			out:  closeFrame(CloseProtocolError, "protocol error: bad close frame"),
		},
		{
			name: "close reason not UTF-8",
			in:   clientFrame(true, opClose, closePayload(1000, "\xff")),
			code: CloseProtocolError,
			out:  closeFrame(CloseProtocolError, "protocol error: bad close frame"),
		},
		{
			name: "invalid UTF-8",
			in:   clientFrame(true, opText, []byte("a\xffb")),
			code: CloseInvalidPayload,
			out:  closeFrame(CloseInvalidPayload, "text message is not valid UTF-8"),
		},
		{
			name: "binary need not be UTF-8",
			in:   clientFrame(true, opBinary, []byte("a\xffb")),
			msgs: []recMsg{{true, "a\xffb"}},
		},
		{
			name:  "over the limit",
			in:    clientFrame(true, opBinary, make([]byte, 101)),
			limit: 100,
			code:  CloseTooLarge,
			out:   closeFrame(CloseTooLarge, "message too large"),
		},
		{
			name:  "at the limit",
			in:    clientFrame(true, opBinary, make([]byte, 100)),
			limit: 100,
			msgs:  []recMsg{{true, string(make([]byte, 100))}},
		},
		{
			name:  "fragments over the limit",
			in:    cat(clientFrame(false, opBinary, make([]byte, 60)), clientFrame(true, opContinuation, make([]byte, 41))),
			limit: 100,
			code:  CloseTooLarge,
			out:   closeFrame(CloseTooLarge, "message too large"),
		},
		{
			name: "control frames do not count against the limit",
			in: cat(clientFrame(false, opBinary, make([]byte, 90)), clientFrame(true, opPing, make([]byte, 20)),
				clientFrame(true, opContinuation, make([]byte, 10))),
			limit: 100,
			msgs:  []recMsg{{true, string(make([]byte, 100))}},
			out:   pongOf(make([]byte, 20)),
		},
		{
			// Regression: int64(len(frag)) + length overflowed, passed the
			// limit check, and slicing the payload panicked.
			name: "continuation with a length near 2^63",
			in: cat(clientFrame(false, opText, []byte("abc")),
				[]byte{0x80, 0x80 | 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4}),
			code: CloseTooLarge,
			out:  closeFrame(CloseTooLarge, "message too large"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit := tt.limit
			if limit == 0 {
				limit = 1 << 10
			}
			want := feedResult{msgs: tt.msgs, closeCode: tt.code, out: tt.out}
			for _, chunk := range []int{0, 1, 2, 3, 7, 13, 4096} {
				got := runFeed(tt.in, chunk, limit)
				if !sameFeed(got, want) {
					t.Fatalf("chunk %d:\n got %v\nwant %v", chunk, got, want)
				}
			}
		})
	}
}

// FuzzParseFrame feeds arbitrary bytes through the connection's parsing
// path (parseHeader, mask and Conn.feed) and checks that it never panics,
// that how the bytes are split across reads changes nothing, and that a
// frame made by the test's own encoder parses back to its payload.
func FuzzParseFrame(f *testing.F) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f.Add([]byte{}, uint8(0))
	f.Add(clientFrame(true, opText, []byte("hello")), uint8(1))
	f.Add(clientFrame(true, opBinary, make([]byte, 300)), uint8(2))
	f.Add(cat(clientFrame(false, opText, []byte("a")), clientFrame(true, opPing, []byte("p")), clientFrame(true, opContinuation, []byte("b"))), uint8(3))
	f.Add(clientFrame(true, opClose, closePayload(1000, "bye")), uint8(4))
	f.Add(encodeFrame(true, 0, opText, false, [4]byte{}, []byte("unmasked")), uint8(5))
	f.Add([]byte{0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4}, uint8(6))
	f.Add(cat(clientFrame(false, opText, []byte("abc")), []byte{0x80, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4}), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		// parseHeader alone: a header it accepts is consistent.
		if h, n, err := parseHeader(data); err == nil && n > 0 {
			if n > len(data) || h.length < 0 || (h.control() && (!h.fin || h.length > maxControlPayload)) {
				t.Fatalf("parseHeader(% x) = %+v, %d", data, h, n)
			}
			if want := headerLen(int(h.length)); !h.masked && n != want && data[1]&0x7F <= 125 {
				t.Fatalf("parseHeader(% x): n = %d, want %d", data, n, want)
			}
		}

		// mask equals the byte-by-byte reference.
		key := [4]byte{split, split ^ 0x5A, split + 1, ^split}
		m1, m2 := append([]byte(nil), data...), append([]byte(nil), data...)
		mask(m1, key)
		maskRef(m2, key)
		if !bytes.Equal(m1, m2) {
			t.Fatalf("mask differs from the reference")
		}

		// Conn.feed: the result does not depend on how reads split the bytes.
		const limit = 4 << 10
		whole := runFeed(data, 0, limit)
		if chunked := runFeed(data, int(split%23)+1, limit); !sameFeed(whole, chunked) {
			t.Fatalf("split in %d-byte reads:\n got %v\nwant %v", split%23+1, chunked, whole)
		}

		// A frame from the test's encoder parses back to its payload, also
		// in fragments with a ping between them.
		op := byte(opBinary)
		if split&1 != 0 {
			op = opText
		}
		frags := int(split>>1)%4 + 1
		var in []byte
		var ping []byte
		for i, rest := 0, data; i < frags; i++ {
			piece := rest[:len(rest)/(frags-i)]
			rest = rest[len(piece):]
			fop := op
			if i > 0 {
				fop = opContinuation
			}
			in = append(in, encodeFrame(i == frags-1, 0, fop, true, key, piece)...)
			if i == 0 && frags > 1 {
				ping = data[:min(len(data), maxControlPayload)]
				in = append(in, encodeFrame(true, 0, opPing, true, key, ping)...)
			}
		}
		if frags == 1 {
			h, n, err := parseHeader(in)
			if err != nil || h.length != int64(len(data)) || !h.masked || h.mask != key || n != len(in)-len(data) {
				t.Fatalf("own frame: header %+v n=%d err=%v", h, n, err)
			}
		}
		got := runFeed(in, int(split%7)+1, len(data)+1)
		var wantOut []byte
		if ping != nil {
			wantOut = pongOf(ping)
		}
		want := feedResult{msgs: []recMsg{{op == opBinary, string(data)}}, out: wantOut}
		if op == opText && !utf8.Valid(data) {
			want = feedResult{closeCode: CloseInvalidPayload, out: append(wantOut, closeFrame(CloseInvalidPayload, "text message is not valid UTF-8")...)}
		}
		if !sameFeed(got, want) {
			t.Fatalf("own frame (op %#x, %d fragments):\n got %v\nwant %v", op, frags, got, want)
		}
	})
}

// TestFeedTricklingFrame feeds a 64 KiB frame one byte per read: the
// partial frame must be kept in a buffer that doubles, not copied on every
// read (which made such a frame cost O(n²) bytes of copying).
func TestFeedTricklingFrame(t *testing.T) {
	payload := bytes.Repeat([]byte("trickle!"), 8<<10)
	frame := clientFrame(true, opBinary, payload)
	c, rec := feedConn()
	one := make([]byte, 1)
	c.readMu.Lock()
	defer c.readMu.Unlock()
	allocs := testing.AllocsPerRun(1, func() {
		for _, b := range frame {
			one[0] = b
			c.feed(one)
		}
	})
	msgs := rec.messages()
	if len(msgs) != 2 || msgs[0].payload != string(payload) || msgs[1] != msgs[0] {
		t.Fatalf("got %d messages, want the payload twice", len(msgs))
	}
	// Per frame: the header's buffer, 4 KiB, five doublings to 128 KiB;
	// then the recorded copies. Logarithmic in the frame's size.
	if allocs > 24 {
		t.Fatalf("%v allocations to feed one %d-byte frame byte by byte, want a handful", allocs, len(frame))
	}
}

// TestFrameHeaderReservesNothing: a header announcing a 64 KiB frame,
// with nothing after it, makes the connection hold a few KiB, not the
// whole frame (2,000 such headers held 144 MB more in a black-box test).
func TestFrameHeaderReservesNothing(t *testing.T) {
	frame := clientFrame(true, opBinary, bytes.Repeat([]byte("x"), 64<<10))
	c, rec := feedConn()
	c.readMu.Lock()
	defer c.readMu.Unlock()
	c.feed(bytes.Clone(frame[:20])) // the header and a few bytes
	if got := cap(c.pending); got > partialFrameMin {
		t.Fatalf("a partial frame of 20 bytes holds a %d-byte buffer, want at most %d", got, partialFrameMin)
	}
	c.feed(bytes.Clone(frame[20:]))
	if msgs := rec.messages(); len(msgs) != 1 || len(msgs[0].payload) != 64<<10 {
		t.Fatalf("got %d messages, want the 64 KiB one", len(msgs))
	}
}

// feedChunks feeds frame to a socketless Conn in chunk-byte reads and
// returns the largest capacity c.pending reached.
func feedChunks(t testing.TB, frame []byte, chunk int) (maxCap int, msgs int) {
	c, rec := feedConn()
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for off := 0; off < len(frame); off += chunk {
		b := bytes.Clone(frame[off:min(off+chunk, len(frame))])
		c.feed(b)
		maxCap = max(maxCap, cap(c.pending))
	}
	return maxCap, len(rec.messages())
}

// TestPartialFrameNeverExceedsFrame: a partial frame's buffer never grows
// past the frame, whatever the size of the reads (the doubling used to
// reach twice the frame).
func TestPartialFrameNeverExceedsFrame(t *testing.T) {
	frame := clientFrame(true, opBinary, bytes.Repeat([]byte("x"), 64<<10)) // the default max_frame_size
	for _, chunk := range []int{1, 4096, readBufSize} {
		maxCap, n := feedChunks(t, frame, chunk)
		if n != 1 {
			t.Fatalf("chunk %d: %d messages", chunk, n)
		}
		if maxCap > len(frame) {
			t.Errorf("chunk %d: a %d-byte frame held a %d-byte buffer (%.2fx)", chunk, len(frame), maxCap, float64(maxCap)/float64(len(frame)))
		}
	}
}

// BenchmarkFeed64KiBIn16KiBReads: a max-size client message arriving in
// the poller's 16 KiB reads.
func BenchmarkFeed64KiBIn16KiBReads(b *testing.B) {
	frame := clientFrame(true, opBinary, bytes.Repeat([]byte("x"), 64<<10))
	srv := NewServer(slog.New(slog.DiscardHandler), Config{ReadLimit: 1 << 17})
	c := &Conn{srv: srv, nc: &sinkConn{}, fd: -1, id: 1, session: nopSession{}}
	bufs := make([][]byte, 0)
	for off := 0; off < len(frame); off += readBufSize {
		bufs = append(bufs, frame[off:min(off+readBufSize, len(frame))])
	}
	rb := make([]byte, readBufSize)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for b.Loop() {
		for _, p := range bufs {
			n := copy(rb, p)
			c.feed(rb[:n])
		}
	}
}

type nopSession struct{}

func (nopSession) HandleMessage(bool, []byte) {}
func (nopSession) Closed()                    {}

// TestStalledFrameHeldOnce: a client sends a 64 KiB frame's first 65,536
// bytes in 16 KiB reads, then one more byte, then stalls: the connection
// holds the frame's size, not twice it (128 KiB before the cap).
func TestStalledFrameHeldOnce(t *testing.T) {
	frame := clientFrame(true, opBinary, bytes.Repeat([]byte("x"), 64<<10))
	c, _ := feedConn()
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for off := 0; off < 65536; off += readBufSize {
		c.feed(bytes.Clone(frame[off : off+readBufSize]))
	}
	c.feed(bytes.Clone(frame[65536:65537]))
	if got := cap(c.pending); got > len(frame) {
		t.Fatalf("stalled %d-byte frame holds %d bytes", len(frame), got)
	}
}

// feedConn is a socketless Conn, for feed, that records the messages it
// reads; its read limit is 128 KiB.
func feedConn() (*Conn, *recSession) {
	srv := NewServer(slog.New(slog.DiscardHandler), Config{ReadLimit: 1 << 17})
	rec := &recSession{done: make(chan struct{})}
	return &Conn{srv: srv, nc: &sinkConn{}, fd: -1, id: 1, session: recordOnly{rec}}, rec
}
