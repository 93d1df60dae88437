package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/wspush/wspush"
)

func TestDecodeObject(t *testing.T) {
	tests := []struct {
		body    string
		want    map[string]string // raw values by key
		wantErr bool
	}{
		{`{"channel":"a","data":1}`, map[string]string{"channel": `"a"`, "data": "1"}, false},
		{` { "channel" : "a" , "data" : { "x" : [ 1 , "}" ] } } `, map[string]string{"channel": `"a"`, "data": `{ "x" : [ 1 , "}" ] }`}, false},
		{`{"data":"quote \" and \\ backslash","channel":"c"}`, map[string]string{"data": `"quote \" and \\ backslash"`, "channel": `"c"`}, false},
		{`{"data":null}`, map[string]string{"data": "null"}, false},
		{`{"data":-1.5e3}`, map[string]string{"data": "-1.5e3"}, false},
		{`{"data":true,"channel":"x"}`, map[string]string{"data": "true", "channel": `"x"`}, false},
		{`{"d\u0061ta":1}`, map[string]string{"data": "1"}, false}, // escaped key
		{`{}`, map[string]string{}, false},
		{`{"chanel":"a"}`, nil, true}, // unknown field
		{`[1]`, nil, true},
		{`"x"`, nil, true},
		{`{"data":1`, nil, true},
		{`{"data":1} {}`, nil, true},
		{``, nil, true},
		{`{"data":01}`, nil, true},
	}
	for _, tt := range tests {
		got := map[string]string{}
		err := decodeObject([]byte(tt.body), func(key string, v []byte) (bool, error) {
			if key != "channel" && key != "data" {
				return false, nil
			}
			got[key] = string(v)
			return true, nil
		})
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err %v, want error %v", tt.body, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, wspush.ErrBadRequest) {
				t.Errorf("%s: error %v is not a bad request", tt.body, err)
			}
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: got %v, want %v", tt.body, got, tt.want)
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", tt.body, k, got[k], v)
			}
		}
	}
}

// FuzzDecodeObject checks the publish decoder against encoding/json: for
// every valid UTF-8 object, the members it finds are the ones encoding/json
// finds; invalid UTF-8 is always refused.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{"channel":"a","data":1}`, `{"a":{"b":[1,"}",{"c":"\\\""}]},"d":null}`, `{"x":"\u00e9"}`, `[]`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := map[string]json.RawMessage{}
		err := decodeObject(b, func(key string, v []byte) (bool, error) {
			got[key] = bytes.Clone(v)
			return true, nil
		})
		if !utf8.Valid(b) {
			if err == nil {
				t.Fatalf("decodeObject accepted invalid UTF-8 %q", b)
			}
			return
		}
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal(b, &want)
		if wantErr != nil || want == nil {
			if err == nil {
				t.Fatalf("decodeObject accepted %q, which encoding/json rejects as an object (%v)", b, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("decodeObject rejected %q: %v", b, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: got %d members, want %d", b, len(got), len(want))
		}
		for k, v := range want {
			if !bytes.Equal(bytes.TrimSpace(got[k]), bytes.TrimSpace(v)) {
				t.Fatalf("%q: member %q = %q, want %q", b, k, got[k], v)
			}
		}
	})
}

func BenchmarkDecodePublish(b *testing.B) {
	body := []byte(`{"channel":"bench","data":{"ts":1764201600000000000,"seq":12345,"pad":"xxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	b.ReportAllocs()
	for b.Loop() {
		var req publishRequest
		_ = decodeObject(body, func(key string, v []byte) (bool, error) {
			var err error
			switch key {
			case "channel":
				req.Channel, err = stringField(key, v)
			case "data":
				req.Data = v
			}
			return true, err
		})
	}
}

func BenchmarkDecodePublishEncodingJSON(b *testing.B) {
	body := []byte(`{"channel":"bench","data":{"ts":1764201600000000000,"seq":12345,"pad":"xxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	b.ReportAllocs()
	for b.Loop() {
		var req publishRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		_ = dec.Decode(&req)
	}
}
