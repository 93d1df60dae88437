package loadtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// serverFrame encodes one unmasked frame as a server sends it.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n < 1<<16:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// chunkConn is a net.Conn whose reads return data in chunks of at most
// size bytes, to exercise frames split across reads.
type chunkConn struct {
	net.Conn
	data []byte
	size int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.size)], c.data)
	c.data = c.data[n:]
	return n, nil
}

func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte("b"), 70000)
	mid := bytes.Repeat([]byte("m"), 300)
	var stream []byte
	stream = append(stream, serverFrame(true, opText, []byte("one"))...)
	stream = append(stream, serverFrame(true, opText, mid)...)
	stream = append(stream, serverFrame(true, opBinary, big)...)
	stream = append(stream, serverFrame(false, opText, []byte("fr"))...)
	stream = append(stream, serverFrame(true, opPing, []byte("p"))...) // between fragments
	stream = append(stream, serverFrame(false, opContinuation, []byte("ag"))...)
	stream = append(stream, serverFrame(true, opContinuation, []byte("ment"))...)
	stream = append(stream, serverFrame(true, opText, nil)...)
	stream = append(stream, serverFrame(true, opClose, []byte{0x0f, 0xa1, 's', 'l', 'o', 'w'})...)
	want := []struct {
		op      byte
		payload string
	}{
		{opText, "one"}, {opText, string(mid)}, {opBinary, string(big)},
		{opPing, "p"}, {opText, "fragment"}, {opText, ""}, {opClose, "\x0f\xa1slow"},
	}
	for _, chunk := range []int{1, 3, 100, 1 << 20} {
		for _, pending := range []int{0, 1, 7} { // bytes already read with the handshake
			fr := newFrameReader(&chunkConn{data: stream[pending:], size: chunk}, stream[:pending], 16)
			for k, w := range want {
				op, p, err := fr.next()
				if err != nil {
					t.Fatalf("chunk %d pending %d: message %d: %v", chunk, pending, k, err)
				}
				if op != w.op || string(p) != w.payload {
					t.Fatalf("chunk %d pending %d: message %d: op %d %q, want %d %q", chunk, pending, k, op, truncate(p, 20), w.op, truncate([]byte(w.payload), 20))
				}
			}
			if _, _, err := fr.next(); !errors.Is(err, io.EOF) {
				t.Fatalf("at the end: %v, want EOF", err)
			}
		}
	}
	ce := closeError([]byte{0x0f, 0xa1, 's', 'l', 'o', 'w'})
	if ce.Code != 4001 || ce.Reason != "slow" || !strings.Contains(ce.Error(), "4001") {
		t.Fatalf("close error %+v", ce)
	}
	if closeError(nil).Code != 1005 {
		t.Fatal("a close frame without a code is 1005")
	}
}

func TestFrameReaderErrors(t *testing.T) {
	tests := map[string][]byte{
		"masked":              {0x81, 0x81, 1, 2, 3, 4, 'x'},
		"reserved bits":       {0xc1, 0x01, 'x'},
		"bare continuation":   serverFrame(true, opContinuation, []byte("x")),
		"interleaved message": append(serverFrame(false, opText, []byte("a")), serverFrame(true, opText, []byte("b"))...),
		"too large":           {0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0},
		"truncated":           serverFrame(true, opText, []byte("hello"))[:4],
	}
	for name, stream := range tests {
		fr := newFrameReader(&chunkConn{data: stream, size: 1 << 20}, nil, 64)
		if _, _, err := fr.next(); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%s: err = %v, want a protocol error", name, err)
		}
	}
}

// loopConn serves the same bytes forever.
type loopConn struct {
	net.Conn
	data []byte
	off  int
}

func (c *loopConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.data[c.off:])
		n += k
		c.off = (c.off + k) % len(c.data)
	}
	return n, nil
}

func TestFrameReaderDoesNotAllocate(t *testing.T) {
	push := []byte(`{"type":"message","channel":"bench","data":{"ts":1795712345123456789,"seq":1,"pad":"xxxxxxxxxxxxxxxxxxxxxx"}}`)
	var stream []byte
	for range 7 { // an odd count so frames straddle reads
		stream = append(stream, serverFrame(true, opText, push)...)
	}
	fr := newFrameReader(&loopConn{data: stream}, nil, 1000)
	allocs := testing.AllocsPerRun(10000, func() {
		if _, p, err := fr.next(); err != nil || len(p) != len(push) {
			t.Fatalf("%v %d", err, len(p))
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message, want 0", allocs)
	}
	if fr.now == 0 || time.Since(time.Unix(0, fr.now)) > time.Minute {
		t.Fatal("arrival time not set")
	}
}
