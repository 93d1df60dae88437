package native

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wspush/wspush"
)

// framePayload checks that frame is one unmasked, final WebSocket text
// frame (RFC 6455 section 5.2) and returns its payload.
func framePayload(t testing.TB, frame []byte) []byte {
	t.Helper()
	if len(frame) < 2 {
		t.Fatalf("frame of %d bytes", len(frame))
	}
	if frame[0] != 0x81 {
		t.Fatalf("first byte %#x, want 0x81 (FIN, text)", frame[0])
	}
	if frame[1]&0x80 != 0 {
		t.Fatalf("server frame is masked")
	}
	n, rest := int(frame[1]&0x7f), frame[2:]
	switch n {
	case 126:
		n, rest = int(binary.BigEndian.Uint16(rest)), rest[2:]
		if n < 126 {
			t.Fatalf("16-bit length %d where 7 bits suffice", n)
		}
	case 127:
		n, rest = int(binary.BigEndian.Uint64(rest)), rest[8:]
		if n <= 0xffff {
			t.Fatalf("64-bit length %d where 16 bits suffice", n)
		}
	}
	if len(rest) != n {
		t.Fatalf("header says %d payload bytes, frame has %d", n, len(rest))
	}
	return rest
}

// decodeFrame parses the JSON object in a text frame.
func decodeFrame(t testing.TB, frame []byte) map[string]json.RawMessage {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(framePayload(t, frame), &obj); err != nil {
		t.Fatalf("frame payload %q is not a JSON object: %v", framePayload(t, frame), err)
	}
	return obj
}

// keys returns the sorted keys of obj, for comparison.
func keys(obj map[string]json.RawMessage) string {
	var ks []string
	for k := range obj {
		ks = append(ks, k)
	}
	return fmt.Sprint(sortStrings(ks))
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestEncodeMessage(t *testing.T) {
	for _, data := range []string{
		`"hello"`,
		`{"text":"hi","n":[1,2,3]}`,
		`null`,
		`0`,
		`"` + strings.Repeat("x", 200) + `"`,   // 16-bit length
		`"` + strings.Repeat("y", 70000) + `"`, // 64-bit length
	} {
		for _, channel := range []string{"chat", "chat:room1", "a_b-c=d@e,f.g;h:i#j$k", strings.Repeat("z", 255)} {
			frame := (&Encoder{}).Encode(&wspush.Message{Channel: channel, Data: json.RawMessage(data)})
			if len(data)+len(channel) < 90 {
				// Small pushes: 2 header bytes, then the payload.
				if int(frame[1]) != len(frame)-2 {
					t.Fatalf("small frame: length byte %d, payload %d bytes", frame[1], len(frame)-2)
				}
			}
			obj := decodeFrame(t, frame)
			if keys(obj) != "[channel data type]" {
				t.Fatalf("message frame has keys %s", keys(obj))
			}
			if string(obj["type"]) != `"message"` {
				t.Errorf("type = %s, want \"message\"", obj["type"])
			}
			var ch string
			if err := json.Unmarshal(obj["channel"], &ch); err != nil || ch != channel {
				t.Errorf("channel = %s, want %q", obj["channel"], channel)
			}
			if string(obj["data"]) != data {
				t.Errorf("data = %.40s, want %.40s", obj["data"], data)
			}
		}
	}
}

func TestEncodeExactBytes(t *testing.T) {
	frame := (&Encoder{}).Encode(&wspush.Message{Channel: "chat", Data: json.RawMessage(`"hello"`)})
	want := `{"type":"message","channel":"chat","data":"hello"}`
	if got := string(frame[2:]); got != want || frame[0] != 0x81 || int(frame[1]) != len(want) {
		t.Fatalf("Encode = % x %q, want 81 %02x %q", frame[:2], frame[2:], len(want), want)
	}
	frame = (&Encoder{}).Encode(&wspush.Message{Broadcast: true, Channel: "ignored", Data: json.RawMessage(`{"a":1}`)})
	want = `{"type":"broadcast","data":{"a":1}}`
	if got := string(frame[2:]); got != want || int(frame[1]) != len(want) {
		t.Fatalf("Encode(broadcast) = %q, want %q", frame[2:], want)
	}
}

func TestEncodeBroadcast(t *testing.T) {
	for _, data := range []string{`"all"`, `{"x":[true,false,null]}`, `"` + strings.Repeat("b", 300) + `"`} {
		obj := decodeFrame(t, (&Encoder{}).Encode(&wspush.Message{Broadcast: true, Data: json.RawMessage(data)}))
		if keys(obj) != "[data type]" {
			t.Fatalf("broadcast frame has keys %s", keys(obj))
		}
		if string(obj["type"]) != `"broadcast"` || string(obj["data"]) != data {
			t.Errorf("broadcast frame = type %s data %.40s; want \"broadcast\", %.40s", obj["type"], obj["data"], data)
		}
	}
}

// TestEncodeDoesNotAlias checks that the frame owns its bytes: the data of
// the message may be reused by no one, but the frame must not share it.
func TestEncodeDoesNotAlias(t *testing.T) {
	data := []byte(`"abc"`)
	frame := (&Encoder{}).Encode(&wspush.Message{Channel: "c", Data: data})
	data[1] = 'X'
	if !bytes.Contains(frame, []byte(`"abc"`)) {
		t.Fatalf("frame %q changed with the message's data", frame)
	}
}

func TestReply(t *testing.T) {
	enc := &Encoder{}
	for _, tt := range []struct {
		name    string
		id      *int64
		err     error
		want    string // exact payload
		code    string
		message string
	}{
		{name: "ok with id", id: ptr(1), want: `{"type":"reply","id":1,"ok":true}`},
		{name: "ok without id", want: `{"type":"reply","ok":true}`},
		{name: "ok negative id", id: ptr(-42), want: `{"type":"reply","id":-42,"ok":true}`},
		{name: "ok max id", id: ptr(9223372036854775807), want: `{"type":"reply","id":9223372036854775807,"ok":true}`},
		{name: "error with id", id: ptr(7), err: wspush.Errorf(wspush.ErrForbidden, "no"),
			want: `{"type":"reply","id":7,"ok":false,"error":{"code":"forbidden","message":"no"}}`, code: "forbidden", message: "no"},
		{name: "error without id", err: wspush.Errorf(wspush.ErrBadRequest, "malformed command: invalid JSON"),
			want: `{"type":"reply","ok":false,"error":{"code":"bad_request","message":"malformed command: invalid JSON"}}`, code: "bad_request", message: "malformed command: invalid JSON"},
		{name: "message needing escapes", id: ptr(3), err: wspush.Errorf(wspush.ErrUnknownOp, "unknown op \"<x>\"\n\\ é"),
			code: "unknown_op", message: "unknown op \"<x>\"\n\\ é"},
		{name: "bare sentinel", id: ptr(4), err: wspush.ErrRateLimited, code: "rate_limited", message: "rate limited"},
		{name: "unknown error leaks nothing", id: ptr(5), err: errors.New("dial tcp 10.1.2.3:6379: refused"),
			want: `{"type":"reply","id":5,"ok":false,"error":{"code":"internal","message":"internal error"}}`, code: "internal", message: "internal error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			frame := enc.reply(tt.id, tt.err)
			payload := framePayload(t, frame)
			if tt.want != "" && string(payload) != tt.want {
				t.Errorf("reply = %s, want %s", payload, tt.want)
			}
			var r struct {
				Type  string `json:"type"`
				ID    *int64 `json:"id"`
				OK    *bool  `json:"ok"`
				Error *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(payload, &r); err != nil {
				t.Fatalf("reply %q is not JSON: %v", payload, err)
			}
			if r.Type != "reply" || r.OK == nil || *r.OK != (tt.err == nil) || idString(r.ID) != idString(tt.id) {
				t.Fatalf("reply %s: type %q ok %v id %s", payload, r.Type, r.OK, idString(r.ID))
			}
			if tt.err == nil {
				if r.Error != nil {
					t.Fatalf("ok reply carries an error: %s", payload)
				}
				return
			}
			if r.Error == nil || r.Error.Code != tt.code || r.Error.Message != tt.message {
				t.Fatalf("reply %s: error %+v, want code %q message %q", payload, r.Error, tt.code, tt.message)
			}
		})
	}
}

func TestWelcome(t *testing.T) {
	enc := &Encoder{}
	for _, tt := range []struct {
		name     string
		clientID string
		channels []string
		ping     time.Duration
		want     string
	}{
		{name: "plain", clientID: "abc", ping: 25 * time.Second,
			want: `{"type":"welcome","client_id":"abc","version":1,"ping_interval":25}`},
		{name: "no ping", clientID: "abc",
			want: `{"type":"welcome","client_id":"abc","version":1}`},
		{name: "channels", clientID: "x-Y_z", channels: []string{"a", "chat:room1"}, ping: time.Minute,
			want: `{"type":"welcome","client_id":"x-Y_z","version":1,"ping_interval":60,"channels":["a","chat:room1"]}`},
		{name: "sub-second ping rounds up", clientID: "abc", ping: 500 * time.Millisecond,
			want: `{"type":"welcome","client_id":"abc","version":1,"ping_interval":1}`},
		{name: "fractional ping rounds up", clientID: "abc", ping: 2500 * time.Millisecond,
			want: `{"type":"welcome","client_id":"abc","version":1,"ping_interval":3}`},
		{name: "real id", clientID: newClientID(), channels: []string{"c"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			frame := enc.welcome(tt.clientID, tt.channels, tt.ping)
			payload := framePayload(t, frame)
			if tt.want != "" && string(payload) != tt.want {
				t.Errorf("welcome = %s, want %s", payload, tt.want)
			}
			var w struct {
				Type         string   `json:"type"`
				ClientID     string   `json:"client_id"`
				Version      int      `json:"version"`
				PingInterval *int     `json:"ping_interval"`
				Channels     []string `json:"channels"`
			}
			dec := json.NewDecoder(bytes.NewReader(payload))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&w); err != nil {
				t.Fatalf("welcome %q: %v", payload, err)
			}
			if w.Type != "welcome" || w.ClientID != tt.clientID || w.Version != 1 || fmt.Sprint(w.Channels) != fmt.Sprint(tt.channels) {
				t.Errorf("welcome %s: got %+v", payload, w)
			}
			if (w.PingInterval != nil) != (tt.ping > 0) || (w.PingInterval != nil && *w.PingInterval <= 0) {
				t.Errorf("welcome %s: ping_interval present %v for ping %v; it must be a positive number of seconds when set", payload, w.PingInterval != nil, tt.ping)
			}
		})
	}
}

func TestNewClientID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newClientID()
		if len(id) != 16 || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("client id %q: want 16 base64url characters", id)
		}
		if seen[id] {
			t.Fatalf("client id %q twice", id)
		}
		seen[id] = true
	}
}

func BenchmarkEncode(b *testing.B) {
	data := json.RawMessage(`{"user":"ann","text":"` + strings.Repeat("x", 64-len(`{"user":"ann","text":""}`)) + `"}`)
	if len(data) != 64 {
		b.Fatalf("payload is %d bytes, want 64", len(data))
	}
	for _, bc := range []struct {
		name string
		m    *wspush.Message
	}{
		{"message", &wspush.Message{Channel: "chat:room1", Data: data}},
		{"broadcast", &wspush.Message{Broadcast: true, Data: data}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			enc := &Encoder{}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				_ = enc.Encode(bc.m)
			}
		})
	}
}
