package loadtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxMessage bounds a message the client accepts (after reassembly).
const maxMessage = 16 << 20

// frameReader reads the frames a server sends (unmasked, RFC 6455) from a
// connection into one buffer that it reuses, so reading a message does not
// allocate once the buffer has grown to the largest message seen.
type frameReader struct {
	conn net.Conn
	buf  []byte // bytes read: buf[r:w] are not consumed yet
	r, w int
	msg  []byte // reassembly of a fragmented message: its opcode, then its payload
	// fragmented is set while a fragmented message is being reassembled
	// (a control frame between its fragments is returned on its own).
	fragmented bool
	// now is the time (unix ns) the last read returned: the arrival time
	// of every message completed by the bytes it brought.
	now int64
	// rx, when set, reads with kernel receive timestamps, and rxNow is
	// the kernel's receive time of the last read's newest packet (0: none).
	rx    *stampedReader
	rxNow int64
}

// newFrameReader returns a reader of conn with an initial buffer of size
// bytes that starts with the bytes in pending (read past the handshake).
func newFrameReader(conn net.Conn, pending []byte, size int) *frameReader {
	buf := make([]byte, max(size, len(pending), 64))
	n := copy(buf, pending)
	return &frameReader{conn: conn, buf: buf, w: n, now: time.Now().UnixNano()}
}

// fill makes at least n unconsumed bytes available, reading as needed.
func (fr *frameReader) fill(n int) error {
	if fr.w-fr.r >= n {
		return nil
	}
	if fr.r == fr.w { // drained: read into the start again, which stays in cache
		fr.r, fr.w = 0, 0
	}
	if fr.r+n > len(fr.buf) { // make room: compact, then grow if still short
		copy(fr.buf, fr.buf[fr.r:fr.w])
		fr.w -= fr.r
		fr.r = 0
		if n > len(fr.buf) {
			grown := make([]byte, max(n, 2*len(fr.buf)))
			copy(grown, fr.buf[:fr.w])
			fr.buf = grown
		}
	}
	for fr.w-fr.r < n {
		var k int
		var err error
		if fr.rx != nil {
			var rx int64
			k, rx, err = fr.rx.read(fr.buf[fr.w:])
			if k > 0 {
				fr.rxNow = rx
			}
		} else {
			k, err = fr.conn.Read(fr.buf[fr.w:])
		}
		fr.w += k
		if k > 0 {
			fr.now = time.Now().UnixNano()
		}
		if err != nil {
			if fr.w-fr.r >= n {
				return nil
			}
			if errors.Is(err, io.EOF) && fr.w > fr.r {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// frame reads one frame and returns its header bits and payload, which is
// valid until the next call.
func (fr *frameReader) frame() (fin bool, op byte, payload []byte, err error) {
	if err := fr.fill(2); err != nil {
		return false, 0, nil, err
	}
	b0, b1 := fr.buf[fr.r], fr.buf[fr.r+1]
	if b1&0x80 != 0 {
		return false, 0, nil, errors.New("server sent a masked frame")
	}
	if b0&0x70 != 0 {
		return false, 0, nil, errors.New("server set reserved bits (compression is not negotiated)")
	}
	hdr, length := 2, uint64(b1&0x7f)
	switch length {
	case 126:
		hdr = 4
	case 127:
		hdr = 10
	}
	if err := fr.fill(hdr); err != nil {
		return false, 0, nil, err
	}
	switch hdr {
	case 4:
		length = uint64(binary.BigEndian.Uint16(fr.buf[fr.r+2:]))
	case 10:
		length = binary.BigEndian.Uint64(fr.buf[fr.r+2:])
	}
	if length > maxMessage {
		return false, 0, nil, fmt.Errorf("frame of %d bytes is over the client's limit", length)
	}
	if err := fr.fill(hdr + int(length)); err != nil {
		return false, 0, nil, err
	}
	start := fr.r + hdr
	fr.r = start + int(length)
	return b0&0x80 != 0, b0 & 0x0f, fr.buf[start:fr.r], nil
}

// next returns the next message: a complete text or binary message
// (fragments reassembled), or a control frame (ping, pong, close). The
// payload is valid until the next call.
func (fr *frameReader) next() (op byte, payload []byte, err error) {
	for {
		fin, op, p, err := fr.frame()
		if err != nil {
			return 0, nil, err
		}
		switch {
		case op >= opClose: // control frames may arrive between fragments
			return op, p, nil
		case op == opContinuation && !fr.fragmented:
			return 0, nil, errors.New("continuation frame without a start")
		case op != opContinuation && fr.fragmented:
			return 0, nil, errors.New("new message inside a fragmented one")
		case fin && !fr.fragmented:
			return op, p, nil
		case !fr.fragmented:
			fr.fragmented = true
			fr.msg = append(fr.msg[:0], op)
		}
		if len(fr.msg)+len(p) > maxMessage+1 {
			return 0, nil, errors.New("fragmented message over the client's limit")
		}
		fr.msg = append(fr.msg, p...)
		if fin {
			fr.fragmented = false
			return fr.msg[0], fr.msg[1:], nil
		}
	}
}

// CloseError is how a server closed a connection: the code and reason of
// its close frame.
type CloseError struct {
	Code   int
	Reason string
}

// Error says how the connection was closed.
func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("closed by the server with %d", e.Code)
	}
	return fmt.Sprintf("closed by the server with %d (%s)", e.Code, e.Reason)
}

// closeError decodes a close frame's payload.
func closeError(p []byte) *CloseError {
	if len(p) < 2 {
		return &CloseError{Code: 1005}
	}
	return &CloseError{Code: int(binary.BigEndian.Uint16(p)), Reason: string(p[2:])}
}
