//go:build !(linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le))

package loadtest

const rxStampsSupported = false
