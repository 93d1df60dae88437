package native

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/ws"
)

// Encoder encodes server-to-client frames. It is the hub's encoder for this
// protocol: each message is encoded once, and the frame shared.
type Encoder struct{}

// Encode returns the frame of a push:
//
//	{"type":"message","channel":"chat","data":...}
//	{"type":"broadcast","data":...}
//
// Channel names need no JSON escaping: their alphabet has no such byte.
func (*Encoder) Encode(m *wspush.Message) []byte {
	b := ws.StartText(make([]byte, 0, 96+len(m.Channel)+len(m.Data)))
	return ws.FinishText(appendPush(b, m))
}

// appendPush appends the JSON of a push:
//
//	{"type":"message","channel":"c","offset":42,"epoch":"x","data":...}
//	{"type":"join","channel":"c","client":{"client_id":"..."}}
func appendPush(b []byte, m *wspush.Message) []byte {
	switch {
	case m.Broadcast:
		b = append(b, `{"type":"broadcast","data":`...)
		b = append(b, m.Data...)
		return append(b, '}')
	case m.Kind == wspush.KindJoin || m.Kind == wspush.KindLeave:
		if m.Kind == wspush.KindJoin {
			b = append(b, `{"type":"join","channel":"`...)
		} else {
			b = append(b, `{"type":"leave","channel":"`...)
		}
		b = append(b, m.Channel...)
		b = append(b, `","client":`...)
		b = appendClient(b, m.Client)
		return append(b, '}')
	}
	b = append(b, `{"type":"message","channel":"`...)
	b = append(b, m.Channel...)
	b = append(b, '"')
	if m.Offset > 0 {
		b = appendPosition(b, m.Position())
	}
	b = append(b, `,"data":`...)
	b = append(b, m.Data...)
	return append(b, '}')
}

// appendPosition appends `,"offset":42,"epoch":"x"`.
func appendPosition(b []byte, p wspush.StreamPosition) []byte {
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, p.Offset, 10)
	b = append(b, `,"epoch":`...)
	return strconv.AppendQuote(b, p.Epoch) // epochs are printable ASCII
}

// appendClient appends a client's JSON: {"client_id":"...","user_id":"...","info":...}.
func appendClient(b []byte, c *wspush.ClientInfo) []byte {
	if c == nil {
		return append(b, "null"...)
	}
	j, _ := json.Marshal(c)
	return append(b, j...)
}

// welcome is the first frame on every connection.
func (*Encoder) welcome(clientID string, channels []string, ping time.Duration) []byte {
	b := ws.StartText(nil)
	b = append(b, `{"type":"welcome","client_id":`...)
	b = strconv.AppendQuote(b, clientID)
	b = append(b, `,"version":1`...)
	if ping > 0 {
		b = append(b, `,"ping_interval":`...)
		// Whole seconds, rounded up: a sub-second interval is not 0 (none).
		secs := ping / time.Second
		if ping%time.Second != 0 {
			secs++
		}
		b = strconv.AppendInt(b, int64(secs), 10)
	}
	if len(channels) > 0 {
		b = append(b, `,"channels":`...)
		j, _ := json.Marshal(channels)
		b = append(b, j...)
	}
	b = append(b, '}')
	return ws.FinishText(b)
}

// reply answers a command: ok when err is nil, else with the error's code
// and message.
func (e *Encoder) reply(id *int64, err error) []byte {
	return e.replyWith(id, err, nil)
}

// replyWith answers a command that succeeded with more fields: extra
// appends them, each starting with a comma.
func (*Encoder) replyWith(id *int64, err error, extra func(b []byte) []byte) []byte {
	b := ws.StartText(nil)
	b = append(b, `{"type":"reply"`...)
	if id != nil {
		b = append(b, `,"id":`...)
		b = strconv.AppendInt(b, *id, 10)
	}
	if err == nil {
		b = append(b, `,"ok":true`...)
		if extra != nil {
			b = extra(b)
		}
		b = append(b, '}')
		return ws.FinishText(b)
	}
	b = append(b, `,"ok":false,"error":{"code":"`...)
	b = append(b, wspush.Code(err)...)
	b = append(b, `","message":`...)
	msg, _ := json.Marshal(wspush.ErrorMessage(err))
	b = append(b, msg...)
	b = append(b, "}}"...)
	return ws.FinishText(b)
}
