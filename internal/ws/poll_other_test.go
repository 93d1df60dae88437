//go:build !linux

package ws

// pollerConns returns how many connections the Server's poller watches:
// none without epoll.
func pollerConns(*Server) int { return 0 }
