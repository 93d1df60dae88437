//go:build !unix

package loadtest

// fdReserve is the descriptors a run needs besides one per connection.
const fdReserve = 64

// checkFileLimit cannot know the limit here: the dials will say so.
func checkFileLimit(n, extra int) error { return nil }
