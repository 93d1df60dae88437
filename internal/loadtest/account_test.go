package loadtest

import (
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

func TestSeqSet(t *testing.T) {
	s := newSeqSet(0)
	for _, seq := range []int64{0, 63, 64, 1000, 5} {
		if !s.add(seq) {
			t.Fatalf("add(%d) reported a duplicate", seq)
		}
	}
	if s.add(63) || s.add(1000) {
		t.Fatal("a repeat was reported new")
	}
	if !s.has(1000) || s.has(999) || s.has(-1) || s.has(1<<20) {
		t.Fatal("has is wrong")
	}
	if s.add(100000); !s.has(100000) { // grows
		t.Fatal("growing lost the member")
	}
	tests := []struct {
		below, want int64
	}{{0, 0}, {1, 1}, {6, 2}, {63, 2}, {64, 3}, {65, 4}, {1001, 5}, {1 << 30, 6}}
	for _, tt := range tests {
		if got := s.countBelow(tt.below); got != tt.want {
			t.Errorf("countBelow(%d) = %d, want %d", tt.below, got, tt.want)
		}
	}
	if s.len() != 6 {
		t.Fatalf("len = %d", s.len())
	}
	o := newSeqSet(0)
	o.add(5)
	o.add(64)
	o.add(7)
	if got := s.countCommon(&o); got != 2 {
		t.Fatalf("countCommon = %d, want 2", got)
	}
	if allocs := testing.AllocsPerRun(1000, func() { s.add(12345) }); allocs != 0 {
		t.Fatalf("add allocates %v once grown", allocs)
	}
}

// run is a fanout's counting without sockets: issued sequence numbers,
// some failed, pushed into subscribers as the receive path would.
type run struct {
	issued atomic.Int64
	start  atomic.Int64
	lat    Histogram
	rxLat  Histogram
	failed seqSet
	subs   []*subscriber
}

func newRun(subscribers int, issued int64, failed ...int64) *run {
	r := &run{failed: newSeqSet(0)}
	r.issued.Store(issued)
	r.start.Store(time.Now().UnixNano())
	for _, f := range failed {
		r.failed.add(f)
	}
	for i := range subscribers {
		r.subs = append(r.subs, &subscriber{idx: i, proto: Native, lat: &r.lat, rxLat: &r.rxLat, issued: &r.issued, start: &r.start,
			seen: newSeqSet(0), perSecond: make([]int64, 4)})
	}
	return r
}

// deliver pushes seq to subscriber i, framed as wspush frames it.
func (r *run) deliver(i int, seq int64) {
	p, at := appendPayload([]byte(`{"type":"message","channel":"bench","data":`), seq, 64)
	putTimestamp(p[at:], time.Now().UnixNano())
	frame := append(p, '}')
	data, ok := Native.pushData(frame)
	if !ok {
		panic("not a push")
	}
	r.subs[i].push(data, time.Now().UnixNano(), time.Now().UnixNano())
}

func (r *run) account() DeliveryStats { return account(r.subs, r.issued.Load(), &r.failed) }

func TestAccountAllDelivered(t *testing.T) {
	r := newRun(3, 100)
	for i := range 3 {
		for seq := range int64(100) {
			r.deliver(i, seq)
		}
	}
	d := r.account()
	want := DeliveryStats{Subscribers: 3, Expected: 300, Delivered: 300}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("got %+v, want %+v", d, want)
	}
	if n := r.lat.Snapshot().Total; n != 300 {
		t.Fatalf("%d latency samples, want 300", n)
	}
}

func TestAccountLostAndDuplicated(t *testing.T) {
	r := newRun(2, 10)
	for seq := range int64(10) {
		r.deliver(0, seq)
		if seq%3 != 0 { // subscriber 1 misses 0, 3, 6, 9
			r.deliver(1, seq)
		}
	}
	r.deliver(0, 4) // duplicates
	r.deliver(0, 4)
	r.deliver(1, 5)
	d := r.account()
	want := DeliveryStats{Subscribers: 2, Expected: 20, Delivered: 16, Lost: 4, Duplicates: 3}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("got %+v, want %+v", d, want)
	}
	if n := r.lat.Snapshot().Total; n != 16 {
		t.Fatalf("%d latency samples, want 16 (duplicates are not samples)", n)
	}
}

// A publish whose call failed is not expected; if it arrives anyway it is
// unexpected, not delivered, and cannot hide a lost message.
func TestAccountFailedPublishes(t *testing.T) {
	r := newRun(2, 10, 2, 7)
	for i := range 2 {
		for seq := range int64(10) {
			if seq == 3 && i == 1 {
				continue // lost
			}
			if seq == 7 && i == 0 {
				continue // failed and (rightly) not delivered here
			}
			r.deliver(i, seq)
		}
	}
	d := r.account()
	want := DeliveryStats{Subscribers: 2, Expected: 16, Delivered: 15, Lost: 1, Unexpected: 3}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("got %+v, want %+v", d, want)
	}
}

func TestAccountMalformed(t *testing.T) {
	r := newRun(1, 5)
	r.deliver(0, 5) // never issued
	s := r.subs[0]
	for _, bad := range []string{`{"seq":1}`, `{"ts":1}`, `{"ts":1,"seq":-1}`, `"hello"`, `{"ts":"1","seq":1}`} {
		s.push([]byte(bad), time.Now().UnixNano(), 0)
	}
	d := r.account()
	want := DeliveryStats{Subscribers: 1, Expected: 5, Delivered: 0, Lost: 5, Malformed: 6}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("got %+v, want %+v", d, want)
	}
}

func TestAccountNoSubscribers(t *testing.T) {
	r := newRun(0, 10)
	if d := r.account(); !reflect.DeepEqual(d, DeliveryStats{}) {
		t.Fatalf("got %+v", d)
	}
}

func TestPushDoesNotAllocate(t *testing.T) {
	r := newRun(1, 1<<20)
	s := r.subs[0]
	p, at := appendPayload(nil, 0, 64)
	seq := int64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		// Rewrite seq in place (same digit count keeps the layout).
		putTimestamp(p[at:], time.Now().UnixNano())
		p[at+tsDigits+len(payloadSeq)] = byte('0' + seq%10)
		seq++
		s.push(p, time.Now().UnixNano(), time.Now().UnixNano())
	})
	if allocs != 0 {
		t.Fatalf("push allocates %v per message", allocs)
	}
}
