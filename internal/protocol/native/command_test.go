package native

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/wspush/wspush"
)

func ptr(n int64) *int64 { return &n }

func idString(id *int64) string {
	if id == nil {
		return "<nil>"
	}
	return strconv.FormatInt(*id, 10)
}

// decodeCases are DecodeCommand's table; the fuzz target starts from them.
var decodeCases = []struct {
	name    string
	frame   string
	op      string
	channel string
	id      *int64
	data    string // exact bytes of Data; "" for none
	errHas  string // substring of the error message; "" for success
}{
	{name: "subscribe", frame: `{"op":"subscribe","channel":"chat"}`, op: OpSubscribe, channel: "chat"},
	{name: "subscribe with id", frame: `{"id":1,"op":"subscribe","channel":"chat"}`, op: OpSubscribe, channel: "chat", id: ptr(1)},
	{name: "unsubscribe", frame: `{"id":2,"op":"unsubscribe","channel":"chat:room1"}`, op: OpUnsubscribe, channel: "chat:room1", id: ptr(2)},
	{name: "publish", frame: `{"id":3,"op":"publish","channel":"chat","data":{"text":"hi"}}`, op: OpPublish, channel: "chat", id: ptr(3), data: `{"text":"hi"}`},
	{name: "ping", frame: `{"id":4,"op":"ping"}`, op: OpPing, id: ptr(4)},
	{name: "id zero", frame: `{"id":0,"op":"ping"}`, op: OpPing, id: ptr(0)},
	{name: "negative id", frame: `{"id":-5,"op":"ping"}`, op: OpPing, id: ptr(-5)},
	{name: "max id", frame: `{"id":9223372036854775807,"op":"ping"}`, op: OpPing, id: ptr(math.MaxInt64)},
	{name: "null id", frame: `{"id":null,"op":"ping"}`, op: OpPing},
	{name: "fields in any order", frame: `{"channel":"c","data":1,"op":"publish","id":9}`, op: OpPublish, channel: "c", id: ptr(9), data: `1`},
	{name: "unknown op decodes", frame: `{"id":5,"op":"frobnicate"}`, op: "frobnicate", id: ptr(5)},
	{name: "unknown fields ignored", frame: `{"op":"ping","extra":[1,2]}`, op: OpPing},

	// Data is kept byte for byte, whatever JSON value it is.
	{name: "data kept exactly", frame: `{"op":"publish","channel":"c","data":{"b" : [1, 2.50, "x\u0041", 1e3] }}`, op: OpPublish, channel: "c", data: `{"b" : [1, 2.50, "x\u0041", 1e3] }`},
	{name: "data string", frame: `{"op":"publish","channel":"c","data":"hello"}`, op: OpPublish, channel: "c", data: `"hello"`},
	{name: "data number", frame: `{"op":"publish","channel":"c","data":-1.5e-3}`, op: OpPublish, channel: "c", data: `-1.5e-3`},
	{name: "data null", frame: `{"op":"publish","channel":"c","data":null}`, op: OpPublish, channel: "c", data: `null`},
	{name: "data unicode", frame: `{"op":"publish","channel":"c","data":"héllo ☃ \ud83d\ude00"}`, op: OpPublish, channel: "c", data: `"héllo ☃ \ud83d\ude00"`},

	// Whitespace around and inside the object.
	{name: "whitespace around", frame: " \n\t{\"op\":\"ping\",\"id\":6}\r\n ", op: OpPing, id: ptr(6)},
	{name: "whitespace inside", frame: "{ \"op\" : \"publish\" ,\n \"channel\" : \"c\" , \"data\" :\t[ 1 ] }", op: OpPublish, channel: "c", data: `[ 1 ]`},

	// Missing op.
	{name: "missing op", frame: `{"id":7,"channel":"chat"}`, id: ptr(7), errHas: "missing op"},
	{name: "empty op", frame: `{"op":""}`, errHas: "missing op"},
	{name: "empty object", frame: `{}`, errHas: "missing op"},
	{name: "null op", frame: `{"id":8,"op":null}`, id: ptr(8), errHas: "missing op"},

	// Not an object.
	{name: "empty frame", frame: ``, errHas: "want a JSON object"},
	{name: "blank frame", frame: " \n ", errHas: "want a JSON object"},
	{name: "array", frame: `[{"op":"ping"}]`, errHas: "want a JSON object"},
	{name: "string", frame: `"ping"`, errHas: "want a JSON object"},
	{name: "number", frame: `42`, errHas: "want a JSON object"},
	{name: "null", frame: `null`, errHas: "want a JSON object"},
	{name: "true", frame: `true`, errHas: "want a JSON object"},
	{name: "plain text", frame: `hello`, errHas: "want a JSON object"},

	// Invalid JSON: the id is returned when it can be read.
	{name: "truncated after id", frame: `{"id":10,"op":"subscribe","channel":"ch`, id: ptr(10), errHas: "invalid JSON"},
	{name: "missing value after id", frame: `{"id":11,"op":}`, id: ptr(11), errHas: "invalid JSON"},
	{name: "trailing comma", frame: `{"id":12,"op":"ping",}`, id: ptr(12), errHas: "invalid JSON"},
	{name: "id not first", frame: `{"op":"ping","id":13,"channel":x}`, id: ptr(13), errHas: "invalid JSON"},
	{name: "id after nested value", frame: `{"data":{"a":[1,{"id":99}]},"id":14,"op":`, id: ptr(14), errHas: "invalid JSON"},
	{name: "id only", frame: `{"id":15`, id: ptr(15), errHas: "invalid JSON"},
	{name: "broken before id", frame: `{"op":"ping",,"id":16}`, errHas: "invalid JSON"},
	{name: "non-integer id in broken frame", frame: `{"id":1.5,"op":`, errHas: "invalid JSON"},
	{name: "string id in broken frame", frame: `{"id":"17","op":`, errHas: "invalid JSON"},
	{name: "lone brace", frame: `{`, errHas: "invalid JSON"},
	{name: "unquoted key", frame: `{op:"ping"}`, errHas: "invalid JSON"},
	{name: "two objects", frame: `{"op":"ping"} {"op":"ping"}`, errHas: "invalid JSON"},
	{name: "trailing garbage", frame: `{"id":18,"op":"ping"}x`, id: ptr(18), errHas: "invalid JSON"},

	// Wrong field types name the field and keep a readable id.
	{name: "op not a string", frame: `{"id":20,"op":1}`, id: ptr(20), errHas: "field op has the wrong type"},
	{name: "op an array", frame: `{"id":21,"op":["ping"]}`, id: ptr(21), errHas: "field op has the wrong type"},
	{name: "channel not a string", frame: `{"id":22,"op":"subscribe","channel":5}`, id: ptr(22), errHas: "field channel has the wrong type"},
	{name: "channel an object", frame: `{"op":"subscribe","channel":{}}`, errHas: "field channel has the wrong type"},
	{name: "id a string", frame: `{"id":"1","op":"ping"}`, errHas: "field id has the wrong type"},
	{name: "id a float", frame: `{"id":1.5,"op":"ping"}`, errHas: "field id has the wrong type"},
	{name: "id too large", frame: `{"id":9223372036854775808,"op":"ping"}`, errHas: "field id has the wrong type"},
	{name: "id a bool", frame: `{"id":true,"op":"ping"}`, errHas: "field id has the wrong type"},
}

func TestDecodeCommand(t *testing.T) {
	for _, tt := range decodeCases {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := DecodeCommand([]byte(tt.frame))
			if idString(cmd.ID) != idString(tt.id) {
				t.Errorf("ID = %s, want %s", idString(cmd.ID), idString(tt.id))
			}
			if tt.errHas != "" {
				if err == nil {
					t.Fatalf("DecodeCommand(%q) = %+v, nil; want an error containing %q", tt.frame, cmd, tt.errHas)
				}
				if !errors.Is(err, wspush.ErrBadRequest) || wspush.Code(err) != "bad_request" {
					t.Errorf("error %v has code %q, want bad_request", err, wspush.Code(err))
				}
				if msg := wspush.ErrorMessage(err); !strings.Contains(msg, tt.errHas) {
					t.Errorf("error message %q, want it to contain %q", msg, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeCommand(%q): %v", tt.frame, err)
			}
			if cmd.Op != tt.op || cmd.Channel != tt.channel || string(cmd.Data) != tt.data {
				t.Errorf("DecodeCommand(%q) = op %q channel %q data %q; want %q %q %q",
					tt.frame, cmd.Op, cmd.Channel, cmd.Data, tt.op, tt.channel, tt.data)
			}
			if tt.data == "" && cmd.Data != nil {
				t.Errorf("Data = %q, want nil when the frame has none", cmd.Data)
			}
		})
	}
}

// TestDecodeCommandDataIsACopy checks that a command does not alias the
// frame buffer, which the transport reuses for the next frame.
func TestDecodeCommandDataIsACopy(t *testing.T) {
	frame := []byte(`{"op":"publish","channel":"c","data":"abc"}`)
	cmd, err := DecodeCommand(frame)
	if err != nil {
		t.Fatal(err)
	}
	for i := range frame {
		frame[i] = 'x'
	}
	if string(cmd.Data) != `"abc"` || cmd.Channel != "c" {
		t.Fatalf("after reusing the frame buffer: channel %q data %q", cmd.Channel, cmd.Data)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, tt := range decodeCases {
		f.Add([]byte(tt.frame))
	}
	f.Add([]byte("{\"op\":\"publish\",\"channel\":\"c\",\"data\":\"\xff\xfe\"}"))
	f.Add([]byte(`{"ID":1,"OP":"ping","Channel":"x"}`))
	f.Add([]byte(`{"op":"a","op":"b","id":1,"id":2}`))
	f.Add([]byte(`{"op":"\u0000\u2028</script>","channel":"\ud800"}`))
	f.Add([]byte(`{"data":[[[[[[[[[[]]]]]]]]]],"op":"x"}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		cmd, err := DecodeCommand(frame)
		if err != nil {
			if !errors.Is(err, wspush.ErrBadRequest) {
				t.Fatalf("DecodeCommand(%q) error %v is not bad_request", frame, err)
			}
			return
		}
		if cmd.Op == "" {
			t.Fatalf("DecodeCommand(%q) accepted a command without op", frame)
		}
		if cmd.Data != nil && !json.Valid(cmd.Data) {
			t.Fatalf("DecodeCommand(%q) kept data %q that is not valid JSON", frame, cmd.Data)
		}
		again, err := json.Marshal(cmd)
		if err != nil {
			t.Fatalf("json.Marshal(%+v): %v", cmd, err)
		}
		cmd2, err := DecodeCommand(again)
		if err != nil {
			t.Fatalf("re-encoded %q (from %q) does not decode: %v", again, frame, err)
		}
		if cmd2.Op != cmd.Op || cmd2.Channel != cmd.Channel || idString(cmd2.ID) != idString(cmd.ID) {
			t.Fatalf("round trip changed the command: %q -> op %q channel %q id %s; %q -> op %q channel %q id %s",
				frame, cmd.Op, cmd.Channel, idString(cmd.ID), again, cmd2.Op, cmd2.Channel, idString(cmd2.ID))
		}
		// A publish of what was decoded must make a well-formed push.
		if cmd.Data != nil {
			out := (&Encoder{}).Encode(&wspush.Message{Channel: "c", Data: cmd.Data})
			var push map[string]json.RawMessage
			if err := json.Unmarshal(framePayload(t, out), &push); err != nil {
				t.Fatalf("push of data %q is not JSON: %v", cmd.Data, err)
			}
		}
	})
}

func BenchmarkDecodeCommand(b *testing.B) {
	for _, bc := range []struct{ name, frame string }{
		{"subscribe", `{"id":1,"op":"subscribe","channel":"chat:room1"}`},
		{"publish", `{"id":2,"op":"publish","channel":"chat:room1","data":{"user":"ann","text":"hello, everyone in the room"}}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			frame := []byte(bc.frame)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeCommand(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
