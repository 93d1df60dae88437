package loadtest

import (
	"sync/atomic"
	"time"
)

// subscriber is one subscribed connection of a fanout run. Its fields
// belong to the connection's reader goroutine until that goroutine ends;
// only received is read while it runs.
type subscriber struct {
	idx    int
	proto  Proto
	lat    *Histogram    // publish call start to the client's read
	rxLat  *Histogram    // publish call start to the kernel's receive timestamp
	issued *atomic.Int64 // sequence numbers handed out so far: larger ones are bogus
	start  *atomic.Int64 // when publishing began (unix ns)

	seen      seqSet
	received  atomic.Int64 // distinct sequence numbers received
	dups      int64
	malformed int64
	perSecond []int64     // new deliveries per second since start
	last      int64       // when the last new delivery arrived (unix ns)
	ended     atomic.Bool // run returned: the connection is gone
}

// run reads c until it ends, counting the pushes.
func (s *subscriber) run(c *conn) error {
	defer s.ended.Store(true)
	for {
		op, p, err := c.fr.next()
		if err != nil {
			return err
		}
		switch op {
		case opText, opBinary:
			if data, ok := s.proto.pushData(p); ok {
				s.push(data, c.fr.now, c.fr.rxNow)
			}
		case opPing:
			c.pong(p)
		case opClose:
			// Gone from the run's point of view before the server can
			// see the answer: a run that begins publishing after that
			// does not expect this subscriber to receive.
			s.ended.Store(true)
			c.close() // the answer RFC 6455 asks for
			return closeError(p)
		}
	}
}

// push counts one pushed payload that the client read at now and the
// kernel received at rx (unix ns; rx is 0 when unknown).
func (s *subscriber) push(data []byte, now, rx int64) {
	ts, ok1 := intField(data, "ts")
	seq, ok2 := intField(data, "seq")
	if !ok1 || !ok2 || seq < 0 || seq >= s.issued.Load() {
		s.malformed++
		return
	}
	if !s.seen.add(seq) {
		s.dups++
		return
	}
	s.received.Add(1)
	s.lat.Record(s.idx, time.Duration(now-ts))
	if rx != 0 {
		s.rxLat.Record(s.idx, time.Duration(rx-ts))
	}
	s.perSecond[secondIndex(now, s.start.Load(), len(s.perSecond))]++
	s.last = max(s.last, now)
}
