package loadtest

import (
	"encoding/json"
	"testing"
	"time"
)

func TestPayloadSizes(t *testing.T) {
	for _, seq := range []int64{0, 9, 10, 12345, 1<<40 + 3} {
		for _, size := range []int{0, 1, minPayload(seq) - 1, minPayload(seq), minPayload(seq) + 1, 64, 1000, 65536} {
			b, at := appendPayload(nil, seq, size)
			if want := max(size, minPayload(seq)); len(b) != want {
				t.Fatalf("seq %d size %d: %d bytes, want %d", seq, size, len(b), want)
			}
			now := time.Now().UnixNano()
			if !putTimestamp(b[at:], now) {
				t.Fatal("putTimestamp refused the current time")
			}
			var v struct {
				TS  int64  `json:"ts"`
				Seq int64  `json:"seq"`
				Pad string `json:"pad"`
			}
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("seq %d size %d: %v in %s", seq, size, err, b)
			}
			if v.TS != now || v.Seq != seq {
				t.Fatalf("decoded ts %d seq %d, want %d %d", v.TS, v.Seq, now, seq)
			}
			if ts, _ := intField(b, "ts"); ts != now {
				t.Fatalf("scanner read ts %d, want %d", ts, now)
			}
		}
	}
	if minPayload(0) != 43 {
		t.Fatalf("minPayload(0) = %d, want 43", minPayload(0))
	}
}

func TestPublishBody(t *testing.T) {
	prefix, suffix := Native.bodyAround("bench")
	b := append([]byte(nil), prefix...)
	b, at := appendPayload(b, 7, 64)
	b = append(b, suffix...)
	putTimestamp(b[at:], 1795712345123456789)
	var req struct {
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &req); err != nil || req.Channel != "bench" || len(req.Data) != 64 {
		t.Fatalf("native body %s: %+v %v", b, req, err)
	}
	if p, s := Seed.bodyAround("bench"); p != nil || s != nil {
		t.Fatal("seed publishes the raw payload")
	}
}

func TestPutTimestamp(t *testing.T) {
	slot := make([]byte, tsDigits)
	for _, bad := range []int64{0, 999999999999999999, -1} {
		if putTimestamp(slot, bad) {
			t.Errorf("putTimestamp accepted %d", bad)
		}
	}
	if !putTimestamp(slot, 1<<63-1) || string(slot) != "9223372036854775807" {
		t.Fatalf("max int64: %s", slot)
	}
}
