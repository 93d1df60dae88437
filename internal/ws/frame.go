package ws

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"
)

// Opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close codes. The 1xxx codes are RFC 6455's; the 4xxx codes are wspush's
// own and are part of its protocol contract (docs/protocol.md).
const (
	CloseNormal           = 1000 // the work is done
	CloseGoingAway        = 1001 // server shutting down: reconnect soon
	CloseProtocolError    = 1002 // a frame broke RFC 6455
	CloseUnsupportedData  = 1003
	CloseInvalidPayload   = 1007 // a text frame that is not UTF-8
	ClosePolicyViolation  = 1008
	CloseTooLarge         = 1009 // a message over the read limit
	CloseInternalError    = 1011
	CloseTryAgainLater    = 1013 // a transient condition: reconnect later
	CloseSlowConsumer     = 4001 // the send queue overflowed
	CloseAppProtocolError = 4002 // wspush protocol abuse
	CloseForbidden        = 4003
	CloseRateLimited      = 4008
	CloseHeartbeatTimeout = 4010 // nothing received within the pong timeout
)

// maxHeaderLen is the longest frame header: 2 bytes, 8 of extended length,
// 4 of mask.
const maxHeaderLen = 14

// maxControlPayload is the largest payload a control frame may carry.
const maxControlPayload = 125

// header is a parsed frame header.
type header struct {
	fin    bool
	op     byte
	masked bool
	mask   [4]byte
	length int64
}

func (h header) control() bool { return h.op&0x8 != 0 }

// errProtocol is a frame that breaks RFC 6455; the connection closes with 1002.
var errProtocol = errors.New("websocket protocol error")

// parseHeader parses the frame header at the start of b. It returns n == 0
// when b does not hold a whole header yet.
func parseHeader(b []byte) (h header, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	h.fin = b[0]&0x80 != 0
	if b[0]&0x70 != 0 { // RSV1-3: no extension is negotiated
		return h, 0, errProtocol
	}
	h.op = b[0] & 0x0F
	switch h.op {
	case opContinuation, opText, opBinary, opClose, opPing, opPong:
	default:
		return h, 0, errProtocol
	}
	h.masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7F; l {
	case 126:
		if len(b) < 4 {
			return h, 0, nil
		}
		h.length = int64(binary.BigEndian.Uint16(b[2:]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, nil
		}
		v := binary.BigEndian.Uint64(b[2:])
		if v>>63 != 0 {
			return h, 0, errProtocol
		}
		h.length = int64(v)
		n = 10
	default:
		h.length = int64(l)
	}
	if h.control() && (!h.fin || h.length > maxControlPayload) {
		return h, 0, errProtocol
	}
	if h.masked {
		if len(b) < n+4 {
			return h, 0, nil
		}
		copy(h.mask[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// appendHeader appends an unmasked (server-to-client) frame header.
func appendHeader(dst []byte, fin bool, op byte, length int) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	switch {
	case length <= 125:
		return append(dst, b0, byte(length))
	case length <= 0xFFFF:
		return append(dst, b0, 126, byte(length>>8), byte(length))
	default:
		dst = append(dst, b0, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(length))
	}
}

// headerLen is the length of the header appendHeader writes for length.
func headerLen(length int) int {
	switch {
	case length <= 125:
		return 2
	case length <= 0xFFFF:
		return 4
	default:
		return 10
	}
}

// mask XORs b with key, starting at key offset 0 (RFC 6455 section 5.3).
func mask(b []byte, key [4]byte) {
	if len(b) >= 8 {
		k4 := binary.LittleEndian.Uint32(key[:])
		k8 := uint64(k4) | uint64(k4)<<32
		for len(b) >= 8 {
			binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k8)
			b = b[8:]
		}
	}
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// AppendText appends a complete text frame carrying payload to dst. The
// result can be passed to Conn.Send on any number of connections.
func AppendText(dst, payload []byte) []byte {
	dst = appendHeader(dst, true, opText, len(payload))
	return append(dst, payload...)
}

// TextFrame builds a text frame in place, so that a message is encoded once
// and never copied: StartText reserves room for the header, the caller
// appends the payload, and FinishText writes the header in front of it.
//
//	b := ws.StartText(nil)
//	b = append(b, `{"type":"message"}`...)
//	frame := ws.FinishText(b)
func StartText(dst []byte) []byte {
	return append(dst, make([]byte, maxHeaderLen)...)
}

// FinishText completes a frame begun with StartText and returns it. The
// frame is a suffix of b.
func FinishText(b []byte) []byte {
	payload := len(b) - maxHeaderLen
	start := maxHeaderLen - headerLen(payload)
	appendHeader(b[start:start], true, opText, payload)
	return b[start:]
}

// closeFrame returns a close frame with code and reason (the reason is cut
// to fit the 125-byte control payload, on a rune boundary).
func closeFrame(code int, reason string) []byte {
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	b := appendHeader(make([]byte, 0, 4+len(reason)), true, opClose, 2+len(reason))
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return append(b, reason...)
}

// validCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 section 7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// pingFrame is the empty ping the heartbeat sends; it is shared.
var pingFrame = appendHeader(nil, true, opPing, 0)
