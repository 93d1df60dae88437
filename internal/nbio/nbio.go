// Package nbio reads and writes non-blocking sockets with raw system
// calls, which skip the Go scheduler's bookkeeping for a call that may
// block.
//
// A read or write through syscall.Syscall marks the goroutine's processor
// as in a system call. The runtime's monitor thread then wakes every 20
// microseconds to check whether the call has blocked, and hands the
// processor to another thread when it finds one that lasted a whole tick,
// which on a loaded machine is often only a thread the kernel preempted.
// On a socket in non-blocking mode a read or write never waits: it
// returns EAGAIN instead. Such calls need none of that bookkeeping, and
// with it gone the monitor backs off to sleeps of up to 10 ms. Measured on
// a 2-core machine serving keep-alive publishes, this cut the server's CPU
// per publish by about a sixth (docs/performance.md).
//
// The calls are the socket ones (recvfrom, send, sendmsg), which skip the
// file layer that read, write and writev go through, and with MSG_NOSIGNAL
// a write to a peer that is gone fails with EPIPE without raising SIGPIPE.
//
// Use these functions only on sockets in non-blocking mode, such as those
// that package net hands to a syscall.RawConn callback: a call that
// blocked would hold its processor for as long as it blocked.
package nbio
