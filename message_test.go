package wspush_test

import (
	"strings"
	"testing"

	"github.com/wspush/wspush"
)

// channelAlphabet is every byte the protocol allows in a channel name.
const channelAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-=@,.;:#$"

func TestValidChannelEveryByte(t *testing.T) {
	allowed := map[byte]bool{}
	for i := 0; i < len(channelAlphabet); i++ {
		allowed[channelAlphabet[i]] = true
	}
	for b := 0; b < 256; b++ {
		c := byte(b)
		for _, name := range []string{string([]byte{c}), "a" + string([]byte{c}) + "z"} {
			if got := wspush.ValidChannel(name, 0); got != allowed[c] {
				t.Errorf("ValidChannel(%q, 0) = %v, want %v", name, got, allowed[c])
			}
		}
	}
	if !wspush.ValidChannel(channelAlphabet, 0) {
		t.Errorf("ValidChannel(whole alphabet) = false")
	}
}

func TestValidChannel(t *testing.T) {
	max := strings.Repeat("a", wspush.MaxChannelLength)
	for _, tt := range []struct {
		name   string
		maxLen int
		want   bool
	}{
		{"chat", 0, true},
		{"chat:room1", 0, true},
		{"user#42", 0, true},
		{"a", 0, true},
		{"", 0, false},
		{"", 10, false},
		{"chat room", 0, false},
		{"chat/room", 0, false},
		{"chat\\room", 0, false},
		{"chat\x00", 0, false},
		{"chat\n", 0, false},
		{" chat", 0, false},
		{"chät", 0, false},
		{"日本", 0, false},
		{"\xff", 0, false},
		{`"chat"`, 0, false},
		{"chat?x=1", 0, false},
		{"chat*", 0, false},
		{max, 0, true},
		{max + "a", 0, false},
		{max, wspush.MaxChannelLength, true},
		{max + "a", wspush.MaxChannelLength + 1, false}, // maxLen above the protocol's limit is capped
		{max + "a", 1000, false},
		{max, -1, true}, // negative means the protocol's limit
		{max + "a", -1, false},
		{"abcde", 5, true},
		{"abcdef", 5, false},
		{"a", 1, true},
		{"ab", 1, false},
	} {
		if got := wspush.ValidChannel(tt.name, tt.maxLen); got != tt.want {
			t.Errorf("ValidChannel(%q (%d bytes), %d) = %v, want %v", short(tt.name), len(tt.name), tt.maxLen, got, tt.want)
		}
	}
}

func short(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

func TestNamespace(t *testing.T) {
	for _, tt := range []struct{ channel, want string }{
		{"chat", ""},
		{"", ""},
		{"chat:room1", "chat"},
		{"chat:room1:sub", "chat"},
		{":room", ""},
		{"chat:", "chat"},
		{"a:b", "a"},
		{"news.sport", ""},
	} {
		if got := wspush.Namespace(tt.channel); got != tt.want {
			t.Errorf("Namespace(%q) = %q, want %q", tt.channel, got, tt.want)
		}
	}
}

func TestDataDepthWithin(t *testing.T) {
	for _, tt := range []struct {
		data  string
		limit int
		want  bool
	}{
		{`1`, 0, true},
		{`[]`, 0, false},
		{`[]`, 1, true},
		{`[[1],{"a":[2]}]`, 3, true},
		{`[[1],{"a":[2]}]`, 2, false},
		{`"[[[[["`, 1, true},                    // brackets in a string do not count
		{`["\"[[[", {"k\\":"]]]{{"}]`, 2, true}, // nor after escaped quotes and backslashes
		{`{"a":{"b":{"c":{}}}}`, 4, true},
		{`{"a":{"b":{"c":{}}}}`, 3, false},
	} {
		if got := wspush.DataDepthWithin([]byte(tt.data), tt.limit); got != tt.want {
			t.Errorf("DataDepthWithin(%s, %d) = %v, want %v", tt.data, tt.limit, got, tt.want)
		}
	}
}

func TestCompactData(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1}`:                          `{"a":1}`,
		"{ \"a\" :\n\t[1, 2]\r\n}":         `{"a":[1,2]}`,
		`"spaces inside strings stay "`:    `"spaces inside strings stay "`,
		` {"s": "a b", "n": null} `:        `{"s":"a b","n":null}`,
		"\"tab\\tand newline\\n escaped\"": "\"tab\\tand newline\\n escaped\"",
		`["a \" b", 1, "c\\"  ,2]`:         `["a \" b",1,"c\\",2]`,
	} {
		if got := wspush.CompactData([]byte(in)); string(got) != want {
			t.Errorf("CompactData(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkCompactData: the cost a client publish pays for compaction.
// chat is data already compact whose strings hold spaces (the common
// case: scanned, not copied); spaced is data with whitespace to remove.
func BenchmarkCompactData(b *testing.B) {
	for name, data := range map[string]string{
		"compact": `{"user":"ann","text":"hi"}`,
		"chat":    `{"user":"ann","text":"see you at the station at five"}`,
		"spaced":  "{\"user\": \"ann\",\n \"text\": \"see you at the station at five\"}",
	} {
		b.Run(name, func(b *testing.B) {
			in := []byte(data)
			b.ReportAllocs()
			for b.Loop() {
				_ = wspush.CompactData(in)
			}
		})
	}
}
