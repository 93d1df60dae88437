// Package nbio reads and writes non-blocking sockets with raw system
// calls, which skip the Go scheduler's bookkeeping for a call that may
// block.
//
// A read or write through syscall.Syscall puts the goroutine's processor
// in the system-call state. The runtime's monitor thread (sysmon) takes the
// processor back from a call that lasted a whole tick of its own and hands
// it to another thread; each time it does, it goes back to polling every
// 20 microseconds. On a loaded machine such a call is often only one whose
// thread the kernel preempted, so the monitor kept polling and waking
// threads. On a socket in non-blocking mode a read or write never waits:
// it returns EAGAIN instead. Such calls need none of that bookkeeping,
// and with it gone the monitor backs off to sleeps of up to 10 ms. Measured on
// a 2-core machine serving keep-alive publishes, this cut the server's CPU
// per publish by about a sixth (docs/performance.md).
//
// The calls are the socket ones (recvfrom, sendto, sendmsg, recvmsg),
// which skip the file layer that read, write and writev go through, and
// with MSG_NOSIGNAL a write to a peer that is gone fails with EPIPE
// without raising SIGPIPE. On 386 and s390x, whose kernels before 4.3
// have the socket calls only through socketcall(2), they are the file
// calls instead.
//
// Use these functions only on sockets in non-blocking mode, such as those
// that package net hands to a syscall.RawConn callback: a call that
// blocked would hold its processor for as long as it blocked.
package nbio
