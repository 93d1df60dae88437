// Package envelope is the wire form of a message between wspush nodes,
// shared by the Redis and NATS brokers:
//
//	v1\n<kind>\n<offset>\n<epoch>\n<client JSON>\n<data>
//
// kind is p (publication), j (join), l (leave) or b (broadcast); offset is
// 0 and epoch empty without history; the client JSON is empty but for join
// and leave. Five header lines, then the data, which may hold newlines.
package envelope

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/wspush/wspush"
)

var kindCodes = map[wspush.Kind]byte{wspush.KindPublication: 'p', wspush.KindJoin: 'j', wspush.KindLeave: 'l'}

// Encode returns m's wire form.
func Encode(m *wspush.Message) []byte {
	kind := kindCodes[m.Kind]
	if m.Broadcast {
		kind = 'b'
	}
	var client []byte
	if m.Client != nil {
		client, _ = json.Marshal(m.Client)
	}
	b := make([]byte, 0, 16+len(m.Epoch)+len(client)+len(m.Data))
	b = append(b, "v1\n"...)
	b = append(b, kind, '\n')
	b = strconv.AppendUint(b, m.Offset, 10)
	b = append(b, '\n')
	b = append(b, m.Epoch...)
	b = append(b, '\n')
	b = append(b, client...)
	b = append(b, '\n')
	return append(b, m.Data...)
}

// ErrMalformed is a payload that is not an envelope.
var ErrMalformed = errors.New("malformed envelope")

// Decode parses a payload received for channel (empty for a broadcast).
// The data is the payload's tail, not copied.
func Decode(channel string, payload string) (*wspush.Message, error) {
	var fields [5]string
	rest := payload
	for i := range fields {
		n := strings.IndexByte(rest, '\n')
		if n < 0 {
			return nil, ErrMalformed
		}
		fields[i], rest = rest[:n], rest[n+1:]
	}
	if fields[0] != "v1" || len(fields[1]) != 1 {
		return nil, ErrMalformed
	}
	m := &wspush.Message{Channel: channel, Data: json.RawMessage(rest), Epoch: fields[3]}
	switch fields[1][0] {
	case 'p':
	case 'j':
		m.Kind = wspush.KindJoin
	case 'l':
		m.Kind = wspush.KindLeave
	case 'b':
		m.Broadcast, m.Channel = true, ""
	default:
		return nil, ErrMalformed
	}
	off, err := strconv.ParseUint(fields[2], 10, 64)
	if err != nil {
		return nil, ErrMalformed
	}
	m.Offset = off
	if fields[4] != "" {
		m.Client = &wspush.ClientInfo{}
		if err := json.Unmarshal([]byte(fields[4]), m.Client); err != nil {
			return nil, ErrMalformed
		}
	}
	return m, nil
}
