package redis

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/wspush/wspush"
)

// A PUB/SUB payload is an envelope of five header lines and the data:
//
//	v1\n<kind>\n<offset>\n<epoch>\n<client JSON>\n<data>
//
// kind is p (publication), j (join), l (leave) or b (broadcast); offset is
// 0 and epoch empty without history; the client JSON is empty but for join
// and leave. The Lua publish script writes the same layout.

var kindCodes = map[wspush.Kind]byte{wspush.KindPublication: 'p', wspush.KindJoin: 'j', wspush.KindLeave: 'l'}

// encodeEnvelope returns m's PUB/SUB payload.
func encodeEnvelope(m *wspush.Message) []byte {
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

var errBadEnvelope = errors.New("malformed redis message")

// decodeEnvelope parses a payload received on channel (empty for the
// broadcast channel). The data is the payload's tail, not copied.
func decodeEnvelope(channel string, payload string) (*wspush.Message, error) {
	var fields [5]string
	rest := payload
	for i := range fields {
		n := strings.IndexByte(rest, '\n')
		if n < 0 {
			return nil, errBadEnvelope
		}
		fields[i], rest = rest[:n], rest[n+1:]
	}
	if fields[0] != "v1" || len(fields[1]) != 1 {
		return nil, errBadEnvelope
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
		return nil, errBadEnvelope
	}
	off, err := strconv.ParseUint(fields[2], 10, 64)
	if err != nil {
		return nil, errBadEnvelope
	}
	m.Offset = off
	if fields[4] != "" {
		m.Client = &wspush.ClientInfo{}
		if err := json.Unmarshal([]byte(fields[4]), m.Client); err != nil {
			return nil, errBadEnvelope
		}
	}
	return m, nil
}
