package loadtest

import (
	"encoding/json"
	"testing"
)

func TestField(t *testing.T) {
	tests := []struct {
		obj, key, want string
	}{
		{`{"type":"message","channel":"bench","data":{"ts":1,"seq":2}}`, "data", `{"ts":1,"seq":2}`},
		{`{"type":"message","channel":"bench","data":{"ts":1,"seq":2}}`, "type", `"message"`},
		{` { "a" : 1 , "b" :	"x" } `, "b", `"x"`},
		{"{\n\"a\":\r\n[1, {\"b\":2}],\n\"b\":3}", "b", "3"},    // a nested b is not the top-level b
		{`{"pad":"he said \"seq\":9, }{","seq":4}`, "seq", "4"}, // quotes, braces and keys inside strings
		{`{"s":"\\","seq":5}`, "seq", "5"},                      // a string ending in an escaped backslash
		{`{"a":{"seq":1},"b":[{"seq":2}],"seq":3}`, "seq", "3"}, // nested keys are skipped
		{`{"seq":1,"seq":2}`, "seq", "1"},                       // the first of duplicates
		{`{"ok":true,"x":null,"y":false}`, "ok", "true"},        // literals
		{`{"n":-1.5e3}`, "n", "-1.5e3"},                         // numbers are returned raw
		{`{"data":"x"}`, "dat", ""},                             // no prefix matches
		{`{}`, "a", ""},                                         // empty object
		{`[{"a":1}]`, "a", ""},                                  // not an object
		{``, "a", ""},                                           // empty input
		{`{"a":1`, "a", "1"},                                    // truncated after the value: still found
		{`{"b":1`, "a", ""},                                     // truncated before it
		{`{"a":"unterminated}`, "a", ""},                        // unterminated string
		{`{"a" 1}`, "a", ""},                                    // missing colon
		{`{"a":}`, "a", ""},                                     // missing value
		{`{"a":{"b":1`, "a", ""},                                // unterminated object
		{`{"x":1 "a":2}`, "a", ""},                              // missing comma
		{`{a:1}`, "a", ""},                                      // unquoted key
		{`{"\u0061":1}`, "a", ""},                               // escaped keys are compared as written
	}
	for _, tt := range tests {
		if got := string(field([]byte(tt.obj), tt.key)); got != tt.want {
			t.Errorf("field(%q, %q) = %q, want %q", tt.obj, tt.key, got, tt.want)
		}
	}
}

func TestIntField(t *testing.T) {
	tests := []struct {
		obj  string
		want int64
		ok   bool
	}{
		{`{"n":0}`, 0, true},
		{`{"n":42}`, 42, true},
		{`{"n":-7}`, -7, true},
		{`{"n":1795712345123456789}`, 1795712345123456789, true},
		{`{"n":9223372036854775807}`, 1<<63 - 1, true},
		{`{"n":-9223372036854775808}`, -1 << 63, true},
		{`{"n":9223372036854775808}`, 0, false},  // overflow
		{`{"n":-9223372036854775809}`, 0, false}, // overflow
		{`{"n":99999999999999999999}`, 0, false}, // 20 digits
		{`{"n":1.5}`, 0, false},
		{`{"n":1e3}`, 0, false},
		{`{"n":01}`, 0, false},
		{`{"n":-}`, 0, false},
		{`{"n":"5"}`, 0, false},
		{`{"n":true}`, 0, false},
		{`{"m":5}`, 0, false},
	}
	for _, tt := range tests {
		got, ok := intField([]byte(tt.obj), "n")
		if got != tt.want || ok != tt.ok {
			t.Errorf("intField(%s) = %d, %v; want %d, %v", tt.obj, got, ok, tt.want, tt.ok)
		}
	}
}

func TestScanDoesNotAllocate(t *testing.T) {
	push := []byte(`{"type":"message","channel":"bench","data":{"ts":1795712345123456789,"seq":123456,"pad":"xxxxxxxxxxxxxxxx"}}`)
	allocs := testing.AllocsPerRun(1000, func() {
		data, ok := Native.pushData(push)
		if !ok {
			t.Fatal("not a push")
		}
		if _, ok := intField(data, "ts"); !ok {
			t.Fatal("no ts")
		}
		if _, ok := intField(data, "seq"); !ok {
			t.Fatal("no seq")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per push, want 0", allocs)
	}
}

// FuzzField checks that the scanner never panics and, on valid JSON
// objects with plain keys, agrees with encoding/json on top-level members.
func FuzzField(f *testing.F) {
	f.Add([]byte(`{"ts":1,"seq":2,"pad":"x"}`), "seq")
	f.Add([]byte(`{"a":[1,{"b":"}"}],"b":"\"","c":null}`), "b")
	f.Fuzz(func(t *testing.T, obj []byte, key string) {
		v := field(obj, key)
		intField(obj, key)
		var m map[string]json.RawMessage
		if v == nil || json.Unmarshal(obj, &m) != nil {
			return
		}
		want, ok := m[key]
		if !ok {
			return // an escaped key, or a duplicate that encoding/json overwrote
		}
		var a, b any
		if json.Unmarshal(v, &a) != nil || json.Unmarshal(want, &b) != nil {
			t.Fatalf("field(%q, %q) = %q: not a JSON value", obj, key, v)
		}
	})
}
