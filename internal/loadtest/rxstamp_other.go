//go:build !(linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le))

package loadtest

import "net"

// stampedReader has no kernel receive timestamps here (only 64-bit Linux).
type stampedReader struct{}

func newStampedReader(net.Conn) *stampedReader { return nil }

func (*stampedReader) read([]byte) (int, int64, error) { panic("unreachable") }
