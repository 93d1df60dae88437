package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Proto is the protocol spoken to the server under test.
type Proto string

// The protocols the load client speaks.
const (
	// Native is wspush's protocol (docs/protocol.md): subscribe with
	// {"op":"subscribe","channel":C,"id":1} and wait for the ok reply;
	// pushes are {"type":"message","channel":C,"data":...}; publish with
	// POST {"channel":C,"data":...} and Authorization: Bearer KEY.
	Native Proto = "native"
	// Seed is the tutorial-style baseline's (bench/tutorial): every
	// connection receives every push, a push frame is the raw published
	// body, "heartbeat" frames are noise, and publishing POSTs the raw
	// payload. There is no subscribe command: a connection counts as
	// subscribed at its first heartbeat, which the baseline sends once the
	// connection is in its push registry.
	Seed Proto = "seed"
)

// ParseProto returns the protocol named s.
func ParseProto(s string) (Proto, error) {
	switch p := Proto(s); p {
	case Native, Seed:
		return p, nil
	}
	return "", fmt.Errorf("unknown protocol %q (want native or seed)", s)
}

// subscribeCommand is the frame that subscribes to channel, or nil when
// the protocol has no subscribe command.
func (p Proto) subscribeCommand(channel string) []byte {
	if p != Native {
		return nil
	}
	b := []byte(`{"op":"subscribe","channel":`)
	b = strconv.AppendQuote(b, channel)
	return append(b, `,"id":1}`...)
}

// errNotReply means a frame was not the awaited subscribe reply.
var errNotReply = errors.New("not the subscribe reply")

// subscribeReply checks whether frame confirms the subscription: nil for
// success, errNotReply for another frame, else the refusal.
func (p Proto) subscribeReply(frame []byte) error {
	if p == Seed {
		if string(frame) == "heartbeat" {
			return nil
		}
		return errNotReply
	}
	if string(field(frame, "type")) != `"reply"` {
		return errNotReply
	}
	if id, ok := intField(frame, "id"); !ok || id != 1 {
		return errNotReply
	}
	if string(field(frame, "ok")) == "true" {
		return nil
	}
	if e := field(frame, "error"); e != nil {
		if code := field(e, "code"); code != nil {
			return fmt.Errorf("subscribe refused: %s", bytes.Trim(code, `"`))
		}
	}
	return fmt.Errorf("subscribe refused: %s", truncate(frame, 120))
}

// pushData returns the published data a pushed frame carries, and false
// for frames that are not pushes (replies, heartbeats, broadcasts).
func (p Proto) pushData(frame []byte) ([]byte, bool) {
	if p == Seed {
		return frame, string(frame) != "heartbeat"
	}
	if string(field(frame, "type")) != `"message"` {
		return nil, false
	}
	data := field(frame, "data")
	return data, data != nil
}

// bodyAround returns what the publish API needs before and after the
// payload for it to publish the payload to channel.
func (p Proto) bodyAround(channel string) (prefix, suffix []byte) {
	if p == Seed {
		return nil, nil
	}
	prefix = strconv.AppendQuote([]byte(`{"channel":`), channel)
	return append(prefix, `,"data":`...), []byte("}")
}

// contentType is the Content-Type of publish requests.
func (p Proto) contentType() string {
	if p == Seed {
		return "text/plain; charset=utf-8" // the tutorial's push handler pushes the body as is
	}
	return "application/json"
}

// truncate returns b as a string of at most n bytes.
func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
