// Package redistest runs real redis-server processes for tests: on a free
// port of 127.0.0.1, in a temporary directory, stopped when the test ends.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running redis-server.
type Server struct {
	t    testing.TB
	Addr string // 127.0.0.1:port
	URL  string // redis://127.0.0.1:port
	dir  string
	args []string
	cmd  *exec.Cmd
	exit chan struct{}
}

// Options tune Start.
type Options struct {
	// Durable makes every acknowledged write survive a restart
	// (appendonly, fsync always).
	Durable bool
}

// Start starts redis-server, or skips the test when it is not installed
// (fails instead when WSPUSH_REQUIRE_REDIS is set, as in CI).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("WSPUSH_REQUIRE_REDIS") != "" {
			t.Fatal("redis-server is not installed (WSPUSH_REQUIRE_REDIS is set)")
		}
		t.Skip("redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{t: t, Addr: "127.0.0.1:" + strconv.Itoa(port), dir: t.TempDir()}
	s.URL = "redis://" + s.Addr
	s.args = []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--protected-mode", "no", "--loglevel", "warning"}
	if opts.Durable {
		s.args = append(s.args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		s.args = append(s.args, "--appendonly", "no")
	}
	s.args = append([]string{path}, s.args...)
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Dir = s.dir
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.exit = make(chan struct{})
	go func(cmd *exec.Cmd, exit chan struct{}) {
		_ = cmd.Wait()
		close(exit)
	}(s.cmd, s.exit)
	deadline := time.Now().Add(10 * time.Second)
	for !s.ping() {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer within 10s", s.Addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping reports whether the server answers PING.
func (s *Server) ping() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// Stop kills the server and waits for it; calling it twice is fine.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exit
	s.cmd = nil
}

// Restart stops the server and starts it again on the same port, with the
// same data directory: a durable server keeps its data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// String names the server in failure messages.
func (s *Server) String() string { return fmt.Sprintf("redis-server %s", s.Addr) }
