package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/httpapi"
	"github.com/wspush/wspush/internal/protocol/native"
	"github.com/wspush/wspush/internal/ws"
)

// config is every setting of wspush serve. Each field is a flag
// (--max-frame-size), an environment variable (WSPUSH_MAX_FRAME_SIZE) and a
// key of the YAML config file (max_frame_size); a flag wins over the
// environment, which wins over the file, which wins over the default.
type config struct {
	Addr             string        `yaml:"addr"`
	APIKey           string        `yaml:"api_key"`
	AllowedOrigins   []string      `yaml:"allowed_origins"`
	Broker           string        `yaml:"broker"`
	RedisURL         string        `yaml:"redis_url"`
	RedisPrefix      string        `yaml:"redis_prefix"`
	NATSURL          string        `yaml:"nats_url"`
	PingInterval     time.Duration `yaml:"ping_interval"`
	PongTimeout      time.Duration `yaml:"pong_timeout"`
	WriteTimeout     time.Duration `yaml:"write_timeout"`
	ShutdownTimeout  time.Duration `yaml:"shutdown_timeout"`
	MaxFrameSize     size          `yaml:"max_frame_size"`
	MaxPublishSize   size          `yaml:"max_publish_size"`
	MaxSubscriptions int           `yaml:"max_subscriptions"`
	MaxChannelLength int           `yaml:"max_channel_length"`
	QueueMaxMessages int           `yaml:"queue_max_messages"`
	QueueMaxBytes    size          `yaml:"queue_max_bytes"`
	ClientRateLimit  float64       `yaml:"client_rate_limit"`
	ClientRateBurst  int           `yaml:"client_rate_burst"`
	LogLevel         string        `yaml:"log_level"`
	LogFormat        string        `yaml:"log_format"`

	// File only.
	DefaultNamespace wspush.ChannelOptions     `yaml:"default_namespace"`
	Namespaces       []wspush.NamespaceOptions `yaml:"namespaces"`

	// builtinNamespaces is set while Namespaces is the built-in list (no
	// config file gave one): a broker that lacks history or presence then
	// runs the demo's namespace without them rather than refusing to start.
	builtinNamespaces bool
}

// defaultShutdownTimeout bounds a graceful stop: connections get 1001 and
// in-flight API requests finish within it, then the rest are cut off.
const defaultShutdownTimeout = 10 * time.Second

func defaultConfig() config {
	return config{
		Addr:             ":7777", // the tutorial's port
		Broker:           "memory",
		RedisURL:         "redis://127.0.0.1:6379",
		RedisPrefix:      "wspush",
		NATSURL:          "nats://127.0.0.1:4222",
		PingInterval:     ws.DefaultPingInterval,
		PongTimeout:      ws.DefaultPongTimeout,
		WriteTimeout:     ws.DefaultWriteTimeout,
		ShutdownTimeout:  defaultShutdownTimeout,
		MaxFrameSize:     ws.DefaultReadLimit,
		MaxPublishSize:   httpapi.DefaultMaxPublishSize,
		MaxSubscriptions: native.DefaultMaxSubscriptions,
		MaxChannelLength: wspush.MaxChannelLength,
		QueueMaxMessages: ws.DefaultQueueMaxMessages,
		QueueMaxBytes:    ws.DefaultQueueMaxBytes,
		ClientRateLimit:  native.DefaultRateLimit,
		ClientRateBurst:  native.DefaultRateBurst,
		LogLevel:         "info",
		LogFormat:        "text",
		DefaultNamespace: wspush.ChannelOptions{ClientPublish: true}, // the chat demo publishes from the browser
		// The chat demo's rooms ("room:<name>") keep their last messages
		// and know who is in them. A config file's namespaces replace this
		// list: one that wants the demo's rooms lists "room" too.
		builtinNamespaces: true,
		Namespaces: []wspush.NamespaceOptions{{
			Name: "room",
			ChannelOptions: wspush.ChannelOptions{
				ClientPublish: true,
				HistorySize:   100,
				HistoryTTL:    24 * time.Hour,
				Presence:      true,
				JoinLeave:     true,
			},
		}},
	}
}

// bind defines a flag for every setting, bound to c's fields.
func (c *config) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "`address` to listen on (host:port)")
	fs.StringVar(&c.APIKey, "api-key", c.APIKey, "`key` the publish API requires as \"Authorization: Bearer <key>\"; without one the API answers loopback callers only")
	fs.Var((*listValue)(&c.AllowedOrigins), "allowed-origins", "comma-separated browser `origins` allowed to connect besides the server's own (https://app.example.com, https://*.example.com, or * for any)")
	fs.StringVar(&c.Broker, "broker", c.Broker, "message `broker`: memory (one node), redis or nats (a cluster of nodes sharing one Redis or NATS)")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis `URL` for --broker redis: redis://[user:password@]host:port[/db], rediss:// for TLS")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", c.RedisPrefix, "`prefix` of wspush's Redis keys and channels, to share a Redis with other applications")
	fs.StringVar(&c.NATSURL, "nats-url", c.NATSURL, "NATS `URL` for --broker nats: nats://host:4222 (comma-separated for several); NATS keeps no history or presence")
	fs.DurationVar(&c.PingInterval, "ping-interval", c.PingInterval, "ping a connection quiet for this `duration`")
	fs.DurationVar(&c.PongTimeout, "pong-timeout", c.PongTimeout, "close a connection that sent nothing (not even a pong) for this `duration`, with 4010")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "cut off a client that accepts no data for this `duration`")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "on SIGINT/SIGTERM, wait this `duration` for connections to close and requests to finish")
	fs.Var(&c.MaxFrameSize, "max-frame-size", "largest inbound WebSocket message, in `bytes` (KiB, MiB suffixes allowed); larger ones close the connection with 1009")
	fs.Var(&c.MaxPublishSize, "max-publish-size", "largest publish request body on the API, in `bytes`; larger ones get 413")
	fs.IntVar(&c.MaxSubscriptions, "max-subscriptions", c.MaxSubscriptions, "channels one connection may subscribe to")
	fs.IntVar(&c.MaxChannelLength, "max-channel-length", c.MaxChannelLength, "longest channel name, in bytes (at most 255)")
	fs.IntVar(&c.QueueMaxMessages, "queue-max-messages", c.QueueMaxMessages, "frames queued for one connection before it is closed as a slow consumer (4001)")
	fs.Var(&c.QueueMaxBytes, "queue-max-bytes", "`bytes` queued for one connection before it is closed as a slow consumer (4001)")
	fs.Float64Var(&c.ClientRateLimit, "client-rate-limit", c.ClientRateLimit, "commands (and WebSocket pings) per second one connection may send on average")
	fs.IntVar(&c.ClientRateBurst, "client-rate-burst", c.ClientRateBurst, "commands (and WebSocket pings) one connection may send at once")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log `level`: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log `format`: text or json")
}

// validate checks the settings before anything starts.
func (c *config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch c.Broker {
	case "memory":
	case "redis":
		if c.RedisURL == "" {
			bad("broker redis needs redis_url")
		}
	case "nats":
		if c.NATSURL == "" {
			bad("broker nats needs nats_url")
		}
	default:
		bad("broker %q: want memory, redis or nats", c.Broker)
	}
	for name, d := range map[string]time.Duration{"ping_interval": c.PingInterval, "pong_timeout": c.PongTimeout, "write_timeout": c.WriteTimeout, "shutdown_timeout": c.ShutdownTimeout} {
		if d <= 0 {
			bad("%s must be positive, not %v", name, d)
		}
	}
	if c.PongTimeout <= c.PingInterval {
		bad("pong_timeout (%v) must be longer than ping_interval (%v)", c.PongTimeout, c.PingInterval)
	}
	for name, n := range map[string]int64{"max_frame_size": int64(c.MaxFrameSize), "max_publish_size": int64(c.MaxPublishSize), "max_subscriptions": int64(c.MaxSubscriptions), "queue_max_messages": int64(c.QueueMaxMessages), "queue_max_bytes": int64(c.QueueMaxBytes), "client_rate_burst": int64(c.ClientRateBurst)} {
		if n <= 0 {
			bad("%s must be positive, not %d", name, n)
		}
	}
	if c.MaxChannelLength <= 0 || c.MaxChannelLength > wspush.MaxChannelLength {
		bad("max_channel_length must be 1-%d, not %d", wspush.MaxChannelLength, c.MaxChannelLength)
	}
	if !(c.ClientRateLimit > 0) || math.IsInf(c.ClientRateLimit, 0) { // NaN too
		bad("client_rate_limit must be a positive number, not %v", c.ClientRateLimit)
	}
	// A push over queue_max_bytes closes every connection it is sent to
	// (4001): the largest message must fit.
	if largest := max(c.MaxPublishSize, c.MaxFrameSize); c.QueueMaxBytes > 0 && c.QueueMaxBytes < largest+queueFrameOverhead {
		bad("queue_max_bytes (%d) must hold the largest message (max_publish_size %d, max_frame_size %d) and its envelope: at least %d", c.QueueMaxBytes, c.MaxPublishSize, c.MaxFrameSize, largest+queueFrameOverhead)
	}
	// So must it the largest welcome, which lists the ?channels= ones.
	if welcome := size(c.MaxSubscriptions*(c.MaxChannelLength+3) + queueFrameOverhead); c.QueueMaxBytes > 0 && c.MaxSubscriptions > 0 && c.QueueMaxBytes < welcome {
		bad("queue_max_bytes (%d) must hold the largest welcome (max_subscriptions %d channels of max_channel_length %d): at least %d", c.QueueMaxBytes, c.MaxSubscriptions, c.MaxChannelLength, welcome)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		bad("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format %q: want text or json", c.LogFormat)
	}
	if _, err := ws.NewOrigins(c.AllowedOrigins); err != nil {
		bad("allowed_origins: %v", err)
	}
	seen := map[string]bool{}
	for i, ns := range c.Namespaces {
		switch {
		case ns.Name == "":
			bad("namespaces[%d]: missing name", i)
		case seen[ns.Name]:
			bad("namespaces: %q appears twice", ns.Name)
		case strings.Contains(ns.Name, ":") || !wspush.ValidChannel(ns.Name, 0):
			bad("namespaces: %q is not a valid namespace name", ns.Name)
		}
		seen[ns.Name] = true
		checkChannelOptions(fmt.Sprintf("namespaces[%s]", ns.Name), ns.ChannelOptions, bad)
	}
	checkChannelOptions("default_namespace", c.DefaultNamespace, bad)
	return errors.Join(errs...)
}

// queueFrameOverhead bounds what a push adds to its data: the JSON
// envelope, a channel name of up to 255 bytes, an offset and an epoch.
const queueFrameOverhead = 512

// Limits of the per-namespace history settings.
const (
	// maxHistorySize bounds history_size: every channel of the namespace
	// may keep this many messages in memory (or in Redis).
	maxHistorySize = 10000
	// defaultHistoryTTL is history_ttl when history_size is set without it.
	defaultHistoryTTL = 10 * time.Minute
)

// checkChannelOptions validates a namespace's options.
func checkChannelOptions(where string, o wspush.ChannelOptions, bad func(string, ...any)) {
	if o.HistorySize < 0 || o.HistorySize > maxHistorySize {
		bad("%s: history_size must be 0-%d, not %d", where, maxHistorySize, o.HistorySize)
	}
	if o.HistoryTTL < 0 {
		bad("%s: history_ttl must not be negative", where)
	}
}

// applyDefaults fills the settings whose default depends on others.
func (c *config) applyDefaults() {
	fill := func(o *wspush.ChannelOptions) {
		if o.HistorySize > 0 && o.HistoryTTL == 0 {
			o.HistoryTTL = defaultHistoryTTL
		}
	}
	fill(&c.DefaultNamespace)
	for i := range c.Namespaces {
		fill(&c.Namespaces[i].ChannelOptions)
	}
}

// envName is the environment variable of a flag: WSPUSH_API_KEY for api-key.
func envName(flagName string) string {
	return "WSPUSH_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// loadConfig resolves the settings of wspush serve from its arguments, the
// environment and the config file: flag > env > file > default.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("wspush serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var configPath string
	fs.StringVar(&configPath, "config", "", "YAML config `file` (keys are the flag names in snake_case)")
	cfg.bind(fs)
	fs.Usage = func() { printServeUsage(fs, stderr) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return cfg, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	fromFlags := map[string]string{}
	fs.Visit(func(f *flag.Flag) { fromFlags[f.Name] = f.Value.String() })
	if configPath == "" {
		configPath = getenv(envName("config"))
	}

	// The flags wrote into cfg; start again from the defaults and apply
	// the sources from the weakest up.
	cfg = defaultConfig()
	if configPath != "" {
		if err := loadFile(configPath, &cfg); err != nil {
			return cfg, err
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := fromFlags[f.Name]; ok || f.Name == "config" {
			return
		}
		if v, ok := lookupEnv(getenv, envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", envName(f.Name), v, err))
			}
		}
	})
	for name, v := range fromFlags {
		if name != "config" {
			_ = fs.Set(name, v) // parsed once already
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	cfg.applyDefaults()
	return cfg, cfg.validate()
}

// lookupEnv reads a variable through getenv; an empty value counts as unset.
func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// loadFile reads the YAML config file into cfg. Unknown keys are errors,
// so that a typo does not pass silently.
func loadFile(path string, cfg *config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	var listed struct {
		Namespaces yaml.Node `yaml:"namespaces"`
	}
	if yaml.Unmarshal(b, &listed) == nil && listed.Namespaces.Kind != 0 {
		cfg.builtinNamespaces = false
	}
	return nil
}

func printServeUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, `Usage: wspush serve [flags]

Runs the push server. Every setting below is also an environment variable
(--api-key is WSPUSH_API_KEY) and a key of the config file (api_key).
Precedence: flag > environment > config file > default.
Namespaces are configured in the file only (see docs/config.md).

`)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n    \t%s\n    \tenv %s", usage, envName(f.Name))
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(w, ", default %s", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// listValue is a comma-separated flag; setting it replaces the list.
type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }

func (l *listValue) Set(s string) error {
	*l = nil
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// size is a byte count written as 65536, 64KiB, 64KB, 1MiB or 1MB
// (binary multiples either way).
type size int64

func (s *size) String() string {
	n := int64(*s)
	switch {
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}

func (s *size) Set(text string) error {
	v := strings.TrimSpace(text)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"KB", 1 << 10}, {"K", 1 << 10}, {"MiB", 1 << 20}, {"MB", 1 << 20}, {"M", 1 << 20}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)/mult {
		return fmt.Errorf("bad size %q: want bytes, or a number with KiB or MiB", text)
	}
	*s = size(n * mult)
	return nil
}

// UnmarshalYAML reads a size from a number or a string such as "64KiB".
// Its errors give the line, as the YAML decoder's own do.
func (s *size) UnmarshalYAML(n *yaml.Node) error {
	if err := s.Set(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}
