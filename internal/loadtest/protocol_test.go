package loadtest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestSubscribeReply(t *testing.T) {
	cmd := Native.subscribeCommand("bench")
	var c struct {
		Op, Channel string
		ID          int
	}
	if err := json.Unmarshal(cmd, &c); err != nil || c.Op != "subscribe" || c.Channel != "bench" || c.ID != 1 {
		t.Fatalf("subscribe command %s: %+v %v", cmd, c, err)
	}
	if Seed.subscribeCommand("bench") != nil {
		t.Fatal("seed has no subscribe step")
	}
	tests := []struct {
		frame string
		want  string // "" ok, "next" errNotReply, else in the error
	}{
		{`{"type":"reply","id":1,"ok":true}`, ""},
		{` {"ok": true, "id": 1, "type": "reply"}`, ""},
		{`{"type":"welcome","client_id":"x","version":1}`, "next"},
		{`{"type":"reply","id":2,"ok":true}`, "next"},
		{`{"type":"message","channel":"bench","data":{"type":"reply","id":1}}`, "next"},
		{`{"type":"reply","id":1,"ok":false,"error":{"code":"forbidden","message":"no"}}`, "forbidden"},
		{`{"type":"reply","id":1,"ok":false}`, "refused"},
	}
	for _, tt := range tests {
		err := Native.subscribeReply([]byte(tt.frame))
		switch {
		case tt.want == "" && err != nil,
			tt.want == "next" && !errors.Is(err, errNotReply),
			tt.want != "" && tt.want != "next" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("subscribeReply(%s) = %v, want %q", tt.frame, err, tt.want)
		}
	}
}

func TestPushData(t *testing.T) {
	tests := []struct {
		p     Proto
		frame string
		want  string
		ok    bool
	}{
		{Native, `{"type":"message","channel":"bench","data":{"ts":1,"seq":2}}`, `{"ts":1,"seq":2}`, true},
		{Native, `{"type":"reply","id":1,"ok":true}`, "", false},
		{Native, `{"type":"broadcast","data":{"ts":1,"seq":2}}`, "", false},
		{Native, `{"type":"message","channel":"bench"}`, "", false},
		{Seed, `{"ts":1,"seq":2}`, `{"ts":1,"seq":2}`, true},
		{Seed, `heartbeat`, "", false},
	}
	for _, tt := range tests {
		got, ok := tt.p.pushData([]byte(tt.frame))
		if ok != tt.ok || (ok && string(got) != tt.want) {
			t.Errorf("%s pushData(%s) = %s, %v", tt.p, tt.frame, got, ok)
		}
	}
	if _, err := ParseProto("centrifugo"); err == nil {
		t.Fatal("unknown protocol accepted")
	}
}

func TestSeedSubscribedAtHeartbeat(t *testing.T) {
	if err := Seed.subscribeReply([]byte("heartbeat")); err != nil {
		t.Fatal(err)
	}
	if err := Seed.subscribeReply([]byte(`{"ts":1,"seq":1}`)); !errors.Is(err, errNotReply) {
		t.Fatal(err)
	}
}
