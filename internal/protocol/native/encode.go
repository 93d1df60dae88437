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
	b := ws.StartText(make([]byte, 0, 64+len(m.Channel)+len(m.Data)))
	if m.Broadcast {
		b = append(b, `{"type":"broadcast","data":`...)
	} else {
		b = append(b, `{"type":"message","channel":"`...)
		b = append(b, m.Channel...)
		b = append(b, `","data":`...)
	}
	b = append(b, m.Data...)
	b = append(b, '}')
	return ws.FinishText(b)
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
func (*Encoder) reply(id *int64, err error) []byte {
	b := ws.StartText(nil)
	b = append(b, `{"type":"reply"`...)
	if id != nil {
		b = append(b, `,"id":`...)
		b = strconv.AppendInt(b, *id, 10)
	}
	if err == nil {
		b = append(b, `,"ok":true}`...)
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
