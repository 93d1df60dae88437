package loadtest

import "strconv"

// A published payload is the JSON object
//
//	{"ts":<unix ns, 19 digits>,"seq":<n>,"pad":"xxx..."}
//
// padded with "x" to exactly the requested size when that is at least the
// size of the object with an empty pad (42 bytes plus the digits of seq).
// The timestamp is written last, into a fixed-width slot, right before the
// publish call goes out.

// tsDigits is the width of the timestamp slot: Unix nanoseconds have 19
// digits from 2001 to 2286.
const tsDigits = 19

const (
	payloadHead = `{"ts":`
	payloadSeq  = `,"seq":`
	payloadPad  = `,"pad":"`
	payloadTail = `"}`
	// payloadFixed is the size of a payload without seq digits and pad.
	payloadFixed = len(payloadHead) + tsDigits + len(payloadSeq) + len(payloadPad) + len(payloadTail)
)

// minPayload is the smallest payload with sequence number seq.
func minPayload(seq int64) int {
	return payloadFixed + digits(seq)
}

// appendPayload appends the payload for seq, of size bytes (or the minimum),
// and returns the extended slice and the offset of its timestamp slot, which
// holds zeros until [putTimestamp] fills it.
func appendPayload(dst []byte, seq int64, size int) ([]byte, int) {
	dst = append(dst, payloadHead...)
	at := len(dst)
	for range tsDigits {
		dst = append(dst, '0')
	}
	dst = append(dst, payloadSeq...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, payloadPad...)
	for range size - minPayload(seq) {
		dst = append(dst, 'x')
	}
	return append(dst, payloadTail...), at
}

// putTimestamp writes ns as 19 decimal digits into slot. It reports false
// when ns does not have exactly 19 digits (a clock before 2001 or after 2286).
func putTimestamp(slot []byte, ns int64) bool {
	if ns < 1e18 || len(slot) < tsDigits {
		return false
	}
	for i := tsDigits - 1; i >= 0; i-- {
		slot[i] = byte('0' + ns%10)
		ns /= 10
	}
	return ns == 0
}

func digits(n int64) int {
	d := 1
	if n < 0 {
		d, n = 2, -n
	}
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}
