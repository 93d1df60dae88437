//go:build linux

package ws

// pollerConns returns how many connections the Server's poller watches.
func pollerConns(s *Server) int {
	if s.poller == nil {
		return 0
	}
	return s.poller.Len()
}
