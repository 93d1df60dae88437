package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/wspush/wspush/internal/loadtest"
)

const benchUsage = `Usage: wspush bench conns|fanout|publish [flags]   (flags: wspush bench SUBCOMMAND --help)

  conns    open -n connections, subscribe and hold them: connect rate, failures,
           server memory per connection (--pid PID or --metrics URL)
  fanout   -n subscribers, publish at --rate R or --max for --duration: delivered,
           lost, duplicated, latency percentiles, server CPU per delivery (--pid)
  publish  API publish throughput and latency with --workers publishers and one subscriber

Targets must be loopback addresses unless --allow-remote is given. See docs/bench.md.
`

// benchSynopsis is each subcommand's usage line.
var benchSynopsis = map[string]string{
	"conns":   "conns --url WS -n N [--pid PID | --metrics URL]",
	"fanout":  "fanout --url WS --api URL -n N (--rate R | --max) --duration D --payload B [--pid PID]",
	"publish": "publish --url WS --api URL [--workers 16] --duration D [--pid PID]",
}

// runBench load-tests a push server (wspush, or the tutorial-style baseline
// with --proto seed); the engine is internal/loadtest.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, benchUsage)
		if len(args) == 0 {
			return usageError{"bench needs a subcommand: conns, fanout or publish"}
		}
		return flag.ErrHelp
	}
	sub := args[0]
	fs := flag.NewFlagSet("wspush bench "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var t loadtest.Target
	proto := fs.String("proto", "native", "protocol: native (wspush) or seed (the tutorial-style baseline, bench/tutorial)")
	fs.StringVar(&t.URL, "url", "", "WebSocket `URL` (default ws://127.0.0.1:7777/ws; seed: ws://127.0.0.1:7780/ws)")
	fs.StringVar(&t.Channel, "channel", loadtest.DefaultChannel, "`channel` to subscribe and publish to")
	fs.IntVar(&t.SrcIPs, "src-ips", loadtest.DefaultSrcIPs, "spread connections over source addresses 127.0.0.1..127.0.0.`K` (0: one address)")
	fs.DurationVar(&t.Timeout, "timeout", loadtest.DefaultTimeout, "bound on each handshake, subscribe and publish call")
	fs.BoolVar(&t.AllowRemote, "allow-remote", false, "allow targets that are not loopback addresses")
	jsonOut := fs.Bool("json", false, "print all figures as one JSON object on stdout (the summary goes to stderr)")
	report := fs.String("report", "", "also write a self-contained HTML report to `file`")
	pid := fs.Int("pid", 0, "server process id: memory from /proc/PID/status, CPU from /proc/PID/stat")
	var n int
	var ramp float64
	if sub == "conns" || sub == "fanout" {
		fs.IntVar(&n, "n", 1000, "connections (conns) or subscribers (fanout)")
		fs.Float64Var(&ramp, "ramp", loadtest.DefaultRamp, "open at most `R` connections per second (0: no pacing)")
	}
	var api string
	var dur, drain, hold time.Duration
	var rate float64
	var maxSpeed bool
	var workers, payload int
	var metrics string
	if sub == "fanout" || sub == "publish" {
		fs.StringVar(&api, "api", "", "publish API `URL` (default http://127.0.0.1:7777/api/publish; seed: http://127.0.0.1:7780/push)")
		fs.StringVar(&t.APIKey, "api-key", getenv("WSPUSH_API_KEY"), "API `key`, sent as Authorization: Bearer (env WSPUSH_API_KEY)")
		fs.DurationVar(&dur, "duration", loadtest.DefaultDuration, "how long to publish")
		fs.IntVar(&payload, "payload", loadtest.DefaultPayload, "`bytes` of each published JSON payload {\"ts\":..,\"seq\":..,\"pad\":\"x..\"}")
		fs.IntVar(&workers, "workers", 0, "concurrent keep-alive publishers (default 4 for fanout --max, 16 for --rate and publish)")
	}
	switch sub {
	case "conns":
		fs.DurationVar(&hold, "hold", loadtest.DefaultHold, "hold the connections this long before sampling the server's memory")
		fs.StringVar(&metrics, "metrics", "", "server's Prometheus `URL` (instead of --pid): process_resident_memory_bytes")
	case "fanout":
		fs.Float64Var(&rate, "rate", 0, "publish `R` messages per second (or --max)")
		fs.BoolVar(&maxSpeed, "max", false, "publish as fast as --workers publishers can")
		fs.DurationVar(&drain, "drain", loadtest.DefaultDrain, "after publishing, wait at most this long for the last deliveries")
	case "publish":
	default:
		fmt.Fprint(stderr, benchUsage)
		return usageError{fmt.Sprintf("unknown bench subcommand %q", sub)}
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: wspush bench %s\nFlags (see docs/bench.md):\n", benchSynopsis[sub])
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("bench %s takes no arguments (got %q)", sub, fs.Arg(0))}
	}
	// Values that would otherwise be taken for "the default", silently.
	for _, c := range []struct {
		bad  bool
		what string
	}{
		{t.Timeout <= 0, "--timeout must be positive"},
		{*pid < 0, "--pid must be a process id"},
		{ramp < 0, "--ramp must be 0 (no pacing) or positive"},
		{n < 0, "-n must be at least 1"},
		{(sub == "fanout" || sub == "publish") && dur <= 0, "--duration must be positive"},
		{payload < 0, "--payload must be 0 (the default) or positive"},
		{workers < 0, "--workers must be 0 (the default) or positive"},
		{drain < 0, "--drain must be 0 (the default, 2s) or positive"},
		{hold < 0, "--hold must be 0 (the default, 5s) or positive"},
	} {
		if c.bad {
			return usageError{c.what}
		}
	}
	p, err := loadtest.ParseProto(*proto)
	if err != nil {
		return usageError{err.Error()}
	}
	t.Proto = p
	t.URL, t.API = orDefault(t.URL, p, "ws://127.0.0.1:7777/ws", "ws://127.0.0.1:7780/ws"),
		orDefault(api, p, "http://127.0.0.1:7777/api/publish", "http://127.0.0.1:7780/push")

	prog := &loadtest.Progress{W: stderr, Terminal: isTerminal(stderr)}
	var r *loadtest.Report
	switch sub {
	case "conns":
		r, err = loadtest.RunConns(ctx, loadtest.ConnsConfig{Target: t, N: n, Ramp: ramp, Hold: hold, PID: *pid, Metrics: metrics}, prog)
	case "fanout":
		r, err = loadtest.RunFanout(ctx, loadtest.FanoutConfig{Target: t, N: n, Ramp: ramp, Rate: rate, Max: maxSpeed,
			Workers: workers, Duration: dur, Drain: drain, Payload: payload, PID: *pid}, prog)
	case "publish":
		r, err = loadtest.RunPublish(ctx, loadtest.PublishConfig{Target: t, Workers: workers, Duration: dur, Payload: payload, PID: *pid}, prog)
	}
	if r == nil {
		return err
	}
	if outErr := writeBenchReport(r, *jsonOut, *report, stdout, stderr); err == nil {
		err = outErr
	}
	return err
}

// writeBenchReport prints the summary (to stderr when stdout gets JSON)
// and writes the HTML report.
func writeBenchReport(r *loadtest.Report, asJSON bool, htmlPath string, stdout, stderr io.Writer) error {
	if asJSON {
		if err := r.WriteText(stderr); err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else if err := r.WriteText(stdout); err != nil {
		return err
	}
	if htmlPath == "" {
		return nil
	}
	f, err := os.Create(htmlPath)
	if err != nil {
		return err
	}
	if err := r.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "report written to", htmlPath)
	return nil
}

// orDefault returns v, or the default URL for protocol p when v is empty.
func orDefault(v string, p loadtest.Proto, native, seed string) string {
	switch {
	case v != "":
		return v
	case p == loadtest.Seed:
		return seed
	}
	return native
}

// isTerminal reports whether w is a terminal (for a progress bar drawn in place).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
