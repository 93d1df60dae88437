// Command wspush is a WebSocket push server: browsers and apps hold a
// WebSocket to it, backends publish through its HTTP API, and it fans each
// message out to the subscribers of a channel.
//
//	wspush serve      run the server (:7777, in-memory broker)
//	wspush publish    publish a message through a server's API
//	wspush bench      load-test a server (conns, fanout, publish)
//	wspush version    print the version
//
// This is the only package that wires the others together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "wspush:", err)
	}
	os.Exit(exitCode(err))
}

// exitCode is 0 for success and --help, 2 for usage errors, 1 for the rest.
func exitCode(err error) int {
	var u usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u):
		return 2
	}
	return 1
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `wspush: a WebSocket push server

Usage:
  wspush serve [flags]                 run the server (see wspush serve --help)
  wspush publish [flags] DATA          publish DATA through a server's API
  wspush bench conns|fanout|publish    load-test a server (see docs/bench.md)
  wspush version                       print the version

Quick start:
  wspush serve                         then open http://localhost:7777/
  curl -d hello localhost:7777/api/publish/chat
`

// run is the whole program: main only adds the process around it, so
// tests can run it with their own arguments, environment and context.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return usageError{"missing command"}
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "publish":
		return runPublish(ctx, rest, getenv, stdin, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "wspush", version())
		return nil
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}
