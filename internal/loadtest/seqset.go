package loadtest

import "math/bits"

// seqSet is a set of non-negative sequence numbers, one bit each. A
// subscriber keeps one to tell a new message from a duplicate; the publisher
// keeps one of the sequence numbers whose publish call failed.
type seqSet struct {
	words []uint64
}

// newSeqSet returns a set with room for sequence numbers below hint before
// it has to grow.
func newSeqSet(hint int64) seqSet {
	return seqSet{words: make([]uint64, max(hint, 64)/64+1)}
}

// add inserts seq and reports whether it was new. Growing doubles the
// storage, so it allocates O(log n) times over a run, never per message.
func (s *seqSet) add(seq int64) bool {
	w, bit := int(seq>>6), uint64(1)<<(seq&63)
	if w >= len(s.words) {
		grown := make([]uint64, max(w+1, 2*len(s.words)))
		copy(grown, s.words)
		s.words = grown
	}
	if s.words[w]&bit != 0 {
		return false
	}
	s.words[w] |= bit
	return true
}

// has reports whether seq is in the set.
func (s *seqSet) has(seq int64) bool {
	w := int(seq >> 6)
	return seq >= 0 && w < len(s.words) && s.words[w]&(uint64(1)<<(seq&63)) != 0
}

// countBelow returns how many members are less than n.
func (s *seqSet) countBelow(n int64) int64 {
	var c int
	full := int(n >> 6)
	for i := 0; i < full && i < len(s.words); i++ {
		c += bits.OnesCount64(s.words[i])
	}
	if rem := n & 63; rem != 0 && full < len(s.words) {
		c += bits.OnesCount64(s.words[full] & (uint64(1)<<rem - 1))
	}
	return int64(c)
}

// countCommon returns how many members s and o have in common.
func (s *seqSet) countCommon(o *seqSet) int64 {
	var c int
	for i := range min(len(s.words), len(o.words)) {
		c += bits.OnesCount64(s.words[i] & o.words[i])
	}
	return int64(c)
}

// len returns the number of members.
func (s *seqSet) len() int64 {
	var c int
	for _, w := range s.words {
		c += bits.OnesCount64(w)
	}
	return int64(c)
}
