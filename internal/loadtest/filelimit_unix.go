//go:build unix

package loadtest

import (
	"fmt"
	"syscall"
)

// fdReserve is the descriptors a run needs besides one per connection:
// stdio, the HTTP clients' connections, /proc files, the runtime's own.
const fdReserve = 64

// checkFileLimit fails when n connections plus extra descriptors do not fit
// under this process's RLIMIT_NOFILE (the Go runtime has already raised the
// soft limit to the hard one).
func checkFileLimit(n, extra int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // not knowable here: let the dials say so
	}
	need := uint64(n + extra + fdReserve)
	if need <= lim.Cur {
		return nil
	}
	most := int64(lim.Cur) - int64(extra+fdReserve)
	return fmt.Errorf("-n %d needs about %d open files, over this process's limit RLIMIT_NOFILE = %d (hard limit %d): "+
		"the highest -n possible is %d; raise the limit (ulimit -n) or lower -n", n, need, lim.Cur, lim.Max, max(most, 0))
}
