package ws

import "sync"

// readBufSize is the size of the pooled buffers reads go into. A socket is
// read until it is drained, so it bounds a read call, not a frame.
const readBufSize = 16 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

func getReadBuf() *[]byte  { return readBufs.Get().(*[]byte) }
func putReadBuf(b *[]byte) { readBufs.Put(b) }

// batchCap is the capacity of pooled send batches; larger ones are dropped
// so that one burst does not pin memory.
const batchCap = 256

var batches = sync.Pool{New: func() any { return make([][]byte, 0, batchCap) }}

func getBatch() [][]byte { return batches.Get().([][]byte) }

func putBatch(b [][]byte) {
	if b == nil || cap(b) > 4*batchCap {
		return
	}
	clear(b[:cap(b)])
	batches.Put(b[:0]) //nolint:staticcheck // a slice header is small next to its array
}
