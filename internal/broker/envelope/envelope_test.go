package envelope

import (
	"reflect"
	"testing"

	"github.com/wspush/wspush"
)

func TestRoundTrip(t *testing.T) {
	for _, m := range []*wspush.Message{
		{Channel: "c", Data: []byte(`{"a":"line\nbreak"}`)},
		{Channel: "c", Data: []byte(`1`), Offset: 42, Epoch: "xYz"},
		{Kind: wspush.KindJoin, Channel: "c", Client: &wspush.ClientInfo{ClientID: "id", UserID: "u", Info: []byte(`{"n":"a\nb"}`)}},
		{Kind: wspush.KindLeave, Channel: "c", Client: &wspush.ClientInfo{ClientID: "id"}},
		{Broadcast: true, Data: []byte(`"all"`)},
		{Channel: "c", Data: []byte(``)},
	} {
		got, err := Decode(m.Channel, string(Encode(m)))
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if len(got.Data) == 0 && len(m.Data) == 0 {
			got.Data = m.Data
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, p := range []string{"", "v1", "v2\np\n0\n\n\nx", "v1\nq\n0\n\n\nx", "v1\np\nabc\n\n\nx", "v1\nj\n0\n\n{bad\nx", "v1\npp\n0\n\n\n"} {
		if _, err := Decode("c", p); err == nil {
			t.Errorf("Decode(%q) accepted", p)
		}
	}
}

// FuzzDecode checks that no payload makes Decode panic, and that what it
// accepts survives a round trip.
func FuzzDecode(f *testing.F) {
	f.Add(string(Encode(&wspush.Message{Channel: "c", Data: []byte("1"), Offset: 3, Epoch: "e"})))
	f.Add("v1\nb\n0\n\n\n\"x\"")
	f.Fuzz(func(t *testing.T, p string) {
		m, err := Decode("c", p)
		if err != nil {
			return
		}
		again, err := Decode(m.Channel, string(Encode(m)))
		if err != nil || again.Offset != m.Offset || again.Epoch != m.Epoch || string(again.Data) != string(m.Data) || again.Kind != m.Kind {
			t.Fatalf("round trip of %q: %+v, %v", p, again, err)
		}
	})
}
