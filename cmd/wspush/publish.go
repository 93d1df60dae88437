package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wspush/wspush/client"
)

// runPublish publishes one message through a server's HTTP API:
//
//	wspush publish --channel chat 'hello'
//	wspush publish --channel chat '{"text":"hi"}'
//	echo '{"a":1}' | wspush publish --channel chat -
func runPublish(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wspush publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", envOr(getenv, "WSPUSH_SERVER", "http://localhost:7777"), "server `URL` (env WSPUSH_SERVER)")
	apiKey := fs.String("api-key", getenv("WSPUSH_API_KEY"), "API `key` (env WSPUSH_API_KEY)")
	var channels listValue
	fs.Var(&channels, "channel", "`channel` to publish to; comma-separated for several")
	broadcast := fs.Bool("broadcast", false, "send to every connection instead of a channel")
	format := fs.String("format", "auto", "how to read DATA: json, string, or auto (JSON if it parses, else a string)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this `duration`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: wspush publish [flags] DATA   (DATA - reads standard input)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageError{"publish takes exactly one DATA argument"}
	}
	if (len(channels) == 0) == !*broadcast {
		return usageError{"give --channel or --broadcast (one of them)"}
	}
	text := fs.Arg(0)
	if text == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, 16<<20))
		if err != nil {
			return err
		}
		text = strings.TrimRight(string(b), "\r\n")
	}
	data, err := publishData(text, *format)
	if err != nil {
		return usageError{err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	api := client.NewAPI(*server, *apiKey)
	if *broadcast {
		err = api.Broadcast(ctx, data)
	} else {
		err = api.PublishMany(ctx, channels, data)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// publishData turns the DATA argument into the JSON value to publish.
func publishData(text, format string) (json.RawMessage, error) {
	switch format {
	case "json":
		if !json.Valid([]byte(text)) {
			return nil, errors.New("DATA is not valid JSON (--format json)")
		}
		return json.RawMessage(text), nil
	case "string":
		return json.Marshal(text)
	case "auto":
		if json.Valid([]byte(text)) {
			return json.RawMessage(text), nil
		}
		return json.Marshal(text)
	}
	return nil, fmt.Errorf("--format %q: want json, string or auto", format)
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
