package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wspush/wspush"
)

// env returns a getenv over the given variables.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// writeConfig writes a config file for the test and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wspush.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(nil, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, defaultConfig()) {
		t.Fatalf("loadConfig with nothing set = %+v, want the defaults %+v", cfg, defaultConfig())
	}
	def := defaultConfig()
	if err := def.validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	if cfg.Addr != ":7777" || cfg.Broker != "memory" || !cfg.DefaultNamespace.ClientPublish {
		t.Fatalf("defaults lost the tutorial's experience: addr %q broker %q client_publish %v", cfg.Addr, cfg.Broker, cfg.DefaultNamespace.ClientPublish)
	}
}

// precedenceSetting is one setting given in each source, with the value
// each source must produce.
type precedenceSetting struct {
	flag     string           // flag name; env and file key derive from it
	file     string           // YAML value
	env, arg string           // env and flag values
	get      func(config) any // reads the setting
	want     [4]any           // default, file, env, flag
}

func precedenceSettings() []precedenceSetting {
	def := defaultConfig()
	return []precedenceSetting{
		{flag: "addr", file: `":1001"`, env: ":1002", arg: ":1003",
			get: func(c config) any { return c.Addr }, want: [4]any{def.Addr, ":1001", ":1002", ":1003"}},
		{flag: "api-key", file: `file-key`, env: "env-key", arg: "flag-key",
			get: func(c config) any { return c.APIKey }, want: [4]any{"", "file-key", "env-key", "flag-key"}},
		{flag: "ping-interval", file: `11s`, env: "12s", arg: "13s",
			get: func(c config) any { return c.PingInterval }, want: [4]any{def.PingInterval, 11 * time.Second, 12 * time.Second, 13 * time.Second}},
		{flag: "write-timeout", file: `1m`, env: "2m", arg: "3m30s",
			get: func(c config) any { return c.WriteTimeout }, want: [4]any{def.WriteTimeout, time.Minute, 2 * time.Minute, 210 * time.Second}},
		{flag: "max-frame-size", file: `32KiB`, env: "200KiB", arg: "1000",
			get: func(c config) any { return c.MaxFrameSize }, want: [4]any{def.MaxFrameSize, size(32 << 10), size(200 << 10), size(1000)}},
		{flag: "queue-max-bytes", file: `131072`, env: "256K", arg: "3MB",
			get: func(c config) any { return c.QueueMaxBytes }, want: [4]any{def.QueueMaxBytes, size(131072), size(256 << 10), size(3 << 20)}},
		{flag: "allowed-origins", file: `["https://file.example", "https://*.file.example"]`, env: "https://env.example, https://env2.example", arg: "https://flag.example",
			get:  func(c config) any { return c.AllowedOrigins },
			want: [4]any{[]string(nil), []string{"https://file.example", "https://*.file.example"}, []string{"https://env.example", "https://env2.example"}, []string{"https://flag.example"}}},
		{flag: "client-rate-limit", file: `1.5`, env: "2.5", arg: "3.5",
			get: func(c config) any { return c.ClientRateLimit }, want: [4]any{def.ClientRateLimit, 1.5, 2.5, 3.5}},
		{flag: "max-subscriptions", file: `10`, env: "20", arg: "30",
			get: func(c config) any { return c.MaxSubscriptions }, want: [4]any{def.MaxSubscriptions, 10, 20, 30}},
		{flag: "log-level", file: `warn`, env: "error", arg: "debug",
			get: func(c config) any { return c.LogLevel }, want: [4]any{def.LogLevel, "warn", "error", "debug"}},
	}
}

// TestConfigPrecedence proves flag > env > file > default for settings of
// every type, in all eight combinations of the three sources.
func TestConfigPrecedence(t *testing.T) {
	settings := precedenceSettings()
	var file strings.Builder
	for _, s := range settings {
		fmt.Fprintf(&file, "%s: %s\n", strings.ReplaceAll(s.flag, "-", "_"), s.file)
	}
	path := writeConfig(t, file.String())
	for combo := range 8 {
		useFile, useEnv, useFlag := combo&1 != 0, combo&2 != 0, combo&4 != 0
		name := fmt.Sprintf("file=%v,env=%v,flag=%v", useFile, useEnv, useFlag)
		t.Run(name, func(t *testing.T) {
			var args, vars []string
			if useFile {
				args = append(args, "--config", path)
			}
			for _, s := range settings {
				if useEnv {
					vars = append(vars, envName(s.flag), s.env)
				}
				if useFlag {
					args = append(args, "--"+s.flag, s.arg)
				}
			}
			cfg, err := loadConfig(args, env(vars...), io.Discard)
			if err != nil {
				t.Fatalf("loadConfig(%q): %v", args, err)
			}
			level := 0
			switch {
			case useFlag:
				level = 3
			case useEnv:
				level = 2
			case useFile:
				level = 1
			}
			for _, s := range settings {
				if got, want := s.get(cfg), s.want[level]; !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", s.flag, got, want)
				}
			}
		})
	}
}

// TestConfigPrecedencePerSetting sets each setting alone, so that one
// setting's source cannot mask another's.
func TestConfigPrecedencePerSetting(t *testing.T) {
	for _, s := range precedenceSettings() {
		t.Run(s.flag, func(t *testing.T) {
			path := writeConfig(t, fmt.Sprintf("%s: %s\n", strings.ReplaceAll(s.flag, "-", "_"), s.file))
			cfg, err := loadConfig([]string{"--config", path}, env(envName(s.flag), s.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.get(cfg); !reflect.DeepEqual(got, s.want[2]) {
				t.Errorf("env over file: %s = %#v, want %#v", s.flag, got, s.want[2])
			}
			// An empty variable counts as unset: the file wins.
			cfg, err = loadConfig([]string{"--config", path}, env(envName(s.flag), ""), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.get(cfg); !reflect.DeepEqual(got, s.want[1]) {
				t.Errorf("empty env: %s = %#v, want the file's %#v", s.flag, got, s.want[1])
			}
			cfg, err = loadConfig([]string{"--" + s.flag + "=" + s.arg}, env(envName(s.flag), s.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.get(cfg); !reflect.DeepEqual(got, s.want[3]) {
				t.Errorf("flag over env: %s = %#v, want %#v", s.flag, got, s.want[3])
			}
		})
	}
}

// TestEverySettingIsFlagEnvAndKey checks that each flag has a config file
// key of the same name in snake_case and the other way round (except the
// file-only keys), so a new setting cannot miss a source.
func TestEverySettingIsFlagEnvAndKey(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg := defaultConfig()
	cfg.bind(fs)
	keys := map[string]bool{}
	typ := reflect.TypeFor[config]()
	for i := range typ.NumField() {
		if !typ.Field(i).IsExported() {
			continue // state of the loader, not a setting
		}
		key, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			t.Errorf("config field %s has no yaml key", typ.Field(i).Name)
			continue
		}
		keys[key] = true
	}
	fileOnly := map[string]bool{"default_namespace": true, "namespaces": true}
	flags := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		key := strings.ReplaceAll(f.Name, "-", "_")
		flags[key] = true
		if !keys[key] {
			t.Errorf("flag --%s has no config file key %q", f.Name, key)
		}
		if want := "WSPUSH_" + strings.ToUpper(key); envName(f.Name) != want {
			t.Errorf("env of --%s = %s, want %s", f.Name, envName(f.Name), want)
		}
	})
	for key := range keys {
		if !flags[key] && !fileOnly[key] {
			t.Errorf("config file key %q has no flag", key)
		}
	}
}

func TestConfigFile(t *testing.T) {
	path := writeConfig(t, `
# a commented config
addr: "127.0.0.1:9000"
api_key: "change-me"
allowed_origins: ["https://app.example.com"]
ping_interval: 20s
pong_timeout: 45s
max_frame_size: 64KiB
max_publish_size: 1MiB
queue_max_bytes: 4MiB
log_format: json

default_namespace: {client_publish: false}
namespaces:
  - name: chat
    client_publish: true
  - name: news
`)
	cfg, err := loadConfig([]string{"--config", path}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9000" || cfg.APIKey != "change-me" || cfg.PingInterval != 20*time.Second ||
		cfg.PongTimeout != 45*time.Second || cfg.MaxFrameSize != 64<<10 || cfg.MaxPublishSize != 1<<20 ||
		cfg.LogFormat != "json" || !reflect.DeepEqual(cfg.AllowedOrigins, []string{"https://app.example.com"}) {
		t.Errorf("settings from the file: %+v", cfg)
	}
	if cfg.LogLevel != "info" || cfg.Broker != "memory" {
		t.Errorf("settings absent from the file lost their defaults: log_level %q broker %q", cfg.LogLevel, cfg.Broker)
	}
	if cfg.DefaultNamespace.ClientPublish {
		t.Errorf("default_namespace.client_publish = true, the file says false")
	}
	want := []wspush.NamespaceOptions{
		{Name: "chat", ChannelOptions: wspush.ChannelOptions{ClientPublish: true}},
		{Name: "news"},
	}
	if !reflect.DeepEqual(cfg.Namespaces, want) {
		t.Fatalf("namespaces = %+v, want %+v", cfg.Namespaces, want)
	}
	ns := wspush.NewNamespaces(cfg.DefaultNamespace, cfg.Namespaces)
	for _, tt := range []struct {
		channel      string
		ok, canWrite bool
	}{{"lobby", true, false}, {"chat:1", true, true}, {"news:1", true, false}, {"other:1", false, false}} {
		opts, ok := ns.Lookup(tt.channel)
		if ok != tt.ok || opts.ClientPublish != tt.canWrite {
			t.Errorf("Lookup(%s) = %+v, %v; want client_publish %v, %v", tt.channel, opts, ok, tt.canWrite, tt.ok)
		}
	}
}

func TestConfigFileEmptyOrPartial(t *testing.T) {
	for _, content := range []string{"", "# nothing\n", "\n\n"} {
		cfg, err := loadConfig([]string{"--config", writeConfig(t, content)}, env(), io.Discard)
		if err != nil {
			t.Fatalf("config file %q: %v", content, err)
		}
		if !reflect.DeepEqual(cfg, defaultConfig()) {
			t.Errorf("config file %q changed the defaults: %+v", content, cfg)
		}
	}
	// A default_namespace without client_publish keeps the default (true).
	cfg, err := loadConfig([]string{"--config", writeConfig(t, "default_namespace: {}\n")}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.DefaultNamespace.ClientPublish {
		t.Errorf("default_namespace: {} turned client_publish off")
	}
}

func TestConfigFileFromEnv(t *testing.T) {
	envFile := writeConfig(t, "addr: \":2001\"\n")
	flagFile := writeConfig(t, "addr: \":2002\"\n")
	cfg, err := loadConfig(nil, env("WSPUSH_CONFIG", envFile), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":2001" {
		t.Errorf("WSPUSH_CONFIG: addr = %q, want the file's :2001", cfg.Addr)
	}
	cfg, err = loadConfig([]string{"--config", flagFile}, env("WSPUSH_CONFIG", envFile), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":2002" {
		t.Errorf("--config over WSPUSH_CONFIG: addr = %q, want :2002", cfg.Addr)
	}
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	if _, err := loadConfig(nil, env("WSPUSH_CONFIG", missing), io.Discard); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("WSPUSH_CONFIG naming a missing file: err = %v, want it to name the file", err)
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, tt := range []struct {
		name, yaml string
		wantHas    []string
	}{
		{"unknown key", "addr: \":1\"\nlisten: \":2\"\n", []string{"listen", "line 2"}},
		{"unknown namespace option", "namespaces:\n  - name: chat\n    client_publsh: true\n", []string{"client_publsh"}},
		{"flag spelling as key", "max-frame-size: 1KiB\n", []string{"max-frame-size"}},
		{"bad size", "max_frame_size: 64KiB\nmax_publish_size: 64XB\n", []string{"line 2", `"64XB"`}},
		{"negative size", "queue_max_bytes: -1\n", []string{"line 1", "bad size"}},
		{"bad duration", "ping_interval: soon\n", []string{"line 1", "soon"}},
		{"duration without unit", "ping_interval: 25\n", []string{"line 1", "Duration"}},
		{"wrong type", "max_subscriptions: many\n", []string{"line 1", "many"}},
		{"not yaml", "addr: [\n", []string{"config file"}},
		{"not a mapping", "- a\n- b\n", []string{"config file"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig([]string{"--config", writeConfig(t, tt.yaml)}, env(), io.Discard)
			if err == nil {
				t.Fatalf("config file %q loaded without error", tt.yaml)
			}
			for _, s := range tt.wantHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestConfigInvalid(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		env     []string
		yaml    string
		wantHas []string
		usage   bool // a command-line mistake: exit code 2
	}{
		{name: "pong not after ping", args: []string{"--ping-interval", "30s", "--pong-timeout", "30s"}, wantHas: []string{"pong_timeout", "ping_interval"}},
		{name: "pong before ping from env", env: []string{"WSPUSH_PING_INTERVAL", "2m"}, wantHas: []string{"pong_timeout (1m0s) must be longer than ping_interval (2m0s)"}},
		{name: "zero ping", args: []string{"--ping-interval", "0s"}, wantHas: []string{"ping_interval must be positive"}},
		{name: "negative write timeout", args: []string{"--write-timeout", "-1s"}, wantHas: []string{"write_timeout must be positive"}},
		{name: "zero shutdown timeout", yaml: "shutdown_timeout: 0s\n", wantHas: []string{"shutdown_timeout must be positive"}},
		{name: "unknown log level", args: []string{"--log-level", "verbose"}, wantHas: []string{"log_level", "verbose"}},
		{name: "unknown log format", env: []string{"WSPUSH_LOG_FORMAT", "xml"}, wantHas: []string{"log_format", "xml"}},
		{name: "unknown broker", args: []string{"--broker", "kafka"}, wantHas: []string{"broker", "kafka"}},
		{name: "bad size flag", args: []string{"--max-frame-size", "64XB"}, wantHas: []string{"max-frame-size", `"64XB"`}, usage: true},
		{name: "bad size env", env: []string{"WSPUSH_QUEUE_MAX_BYTES", "lots"}, wantHas: []string{"WSPUSH_QUEUE_MAX_BYTES", "lots"}},
		{name: "fractional size", args: []string{"--max-publish-size", "1.5MiB"}, wantHas: []string{"max-publish-size"}, usage: true},
		{name: "overflowing size", args: []string{"--max-frame-size", "9223372036854775807KiB"}, wantHas: []string{"max-frame-size", "bad size"}, usage: true},
		{name: "zero size", args: []string{"--queue-max-bytes", "0"}, wantHas: []string{"queue_max_bytes must be positive"}},
		{name: "zero frame size", yaml: "max_frame_size: 0\n", wantHas: []string{"max_frame_size must be positive"}},
		{name: "bad duration env", env: []string{"WSPUSH_PING_INTERVAL", "soon"}, wantHas: []string{"WSPUSH_PING_INTERVAL", "soon"}},
		{name: "bad duration flag", args: []string{"--pong-timeout", "soon"}, wantHas: []string{"pong-timeout"}, usage: true},
		{name: "bad int env", env: []string{"WSPUSH_MAX_SUBSCRIPTIONS", "ten"}, wantHas: []string{"WSPUSH_MAX_SUBSCRIPTIONS"}},
		{name: "zero subscriptions", args: []string{"--max-subscriptions", "0"}, wantHas: []string{"max_subscriptions must be positive"}},
		{name: "channel length too long", args: []string{"--max-channel-length", "256"}, wantHas: []string{"max_channel_length must be 1-255"}},
		{name: "channel length zero", args: []string{"--max-channel-length", "0"}, wantHas: []string{"max_channel_length"}},
		{name: "zero rate", args: []string{"--client-rate-limit", "0"}, wantHas: []string{"client_rate_limit must be a positive number"}},
		{name: "NaN rate", env: []string{"WSPUSH_CLIENT_RATE_LIMIT", "NaN"}, wantHas: []string{"client_rate_limit must be a positive number, not NaN"}},
		{name: "infinite rate", args: []string{"--client-rate-limit", "+Inf"}, wantHas: []string{"client_rate_limit must be a positive number"}},
		{name: "queue smaller than a message", args: []string{"--queue-max-bytes", "1KiB"}, wantHas: []string{"queue_max_bytes (1024) must hold the largest message", "at least 66048"}},
		{name: "queue smaller than a welcome", args: []string{"--queue-max-bytes", "64KiB", "--max-frame-size", "8KiB", "--max-publish-size", "8KiB"}, wantHas: []string{"queue_max_bytes (65536) must hold the largest welcome", "at least 66560"}},
		{name: "queue smaller than a frame", yaml: "max_frame_size: 1MiB\nqueue_max_bytes: 1MiB\n", wantHas: []string{"queue_max_bytes", "max_frame_size 1048576"}},
		{name: "zero burst", args: []string{"--client-rate-burst", "0"}, wantHas: []string{"client_rate_burst must be positive"}},
		{name: "origin without scheme", args: []string{"--allowed-origins", "app.example.com"}, wantHas: []string{"allowed_origins", "app.example.com"}},
		{name: "origin with path", env: []string{"WSPUSH_ALLOWED_ORIGINS", "https://ok.example,https://app.example.com/path"}, wantHas: []string{"allowed_origins", "https://app.example.com/path"}},
		{name: "origin in file", yaml: "allowed_origins: [\"ftp:nohost\"]\n", wantHas: []string{"allowed_origins"}},
		{name: "namespace without name", yaml: "namespaces:\n  - client_publish: true\n", wantHas: []string{"namespaces[0]: missing name"}},
		{name: "namespace twice", yaml: "namespaces:\n  - name: chat\n  - name: chat\n", wantHas: []string{"namespaces", `"chat" appears twice`}},
		{name: "namespace with colon", yaml: "namespaces:\n  - name: \"a:b\"\n", wantHas: []string{"namespaces", `"a:b"`}},
		{name: "namespace with space", yaml: "namespaces:\n  - name: \"a b\"\n", wantHas: []string{"namespaces", `"a b"`}},
		{name: "unknown flag", args: []string{"--no-such-flag"}, wantHas: []string{"no-such-flag"}, usage: true},
		{name: "positional argument", args: []string{"extra"}, wantHas: []string{`"extra"`}, usage: true},
		{name: "several errors at once", args: []string{"--log-level", "loud", "--log-format", "xml"}, wantHas: []string{"log_level", "log_format"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.yaml != "" {
				args = append([]string{"--config", writeConfig(t, tt.yaml)}, args...)
			}
			var stderr bytes.Buffer
			_, err := loadConfig(args, env(tt.env...), &stderr)
			if err == nil {
				t.Fatalf("loadConfig(%q, env %q) accepted invalid settings", args, tt.env)
			}
			for _, s := range tt.wantHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if got := exitCode(err) == 2; got != tt.usage {
				t.Errorf("exitCode(%v) = %d; want a usage error (2): %v", err, exitCode(err), tt.usage)
			}
		})
	}
}

func TestConfigValidAllowedOrigins(t *testing.T) {
	cfg, err := loadConfig([]string{"--allowed-origins", "https://app.example.com, https://*.example.com,*"}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://app.example.com", "https://*.example.com", "*"}; !reflect.DeepEqual(cfg.AllowedOrigins, want) {
		t.Errorf("allowed origins = %q, want %q", cfg.AllowedOrigins, want)
	}
}

// TestServeHelp checks that --help lists every flag, each with its
// environment variable and its default. It iterates the flags themselves,
// so a new flag is covered without changing the test.
func TestServeHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := loadConfig([]string{"--help"}, env(), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("loadConfig(--help) = %v, want flag.ErrHelp", err)
	}
	usage := out.String()
	if !strings.Contains(usage, "Usage: wspush serve") || !strings.Contains(usage, "flag > environment > config file > default") {
		t.Errorf("usage lacks its header:\n%s", usage)
	}
	// Split the usage into one block per flag: "  --name ...", then its lines.
	blocks := map[string]string{}
	var current string
	for line := range strings.Lines(usage) {
		if rest, ok := strings.CutPrefix(line, "  --"); ok {
			current, _, _ = strings.Cut(strings.TrimSpace(rest), " ")
			blocks[current] = line
			continue
		}
		if current != "" {
			blocks[current] += line
		}
	}

	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg := defaultConfig()
	cfg.bind(fs)
	fs.String("config", "", "") // defined by loadConfig itself
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		block, ok := blocks[f.Name]
		if !ok {
			t.Errorf("--help does not list --%s", f.Name)
			return
		}
		if !strings.Contains(block, "env "+envName(f.Name)) {
			t.Errorf("--help entry of --%s lacks its env var %s:\n%s", f.Name, envName(f.Name), block)
		}
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && !strings.Contains(block, "default "+f.DefValue) {
			t.Errorf("--help entry of --%s lacks its default %q:\n%s", f.Name, f.DefValue, block)
		}
	})
	if len(blocks) != n {
		t.Errorf("--help lists %d flags, the flag set has %d", len(blocks), n)
	}
	for _, want := range []string{"default :7777", "default 64KiB", "default 25s", "env WSPUSH_CONFIG", "env WSPUSH_API_KEY", "env WSPUSH_ALLOWED_ORIGINS"} {
		if !strings.Contains(usage, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

func TestRunServeHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"wspush", "serve", "--help"}, env(), strings.NewReader(""), &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("wspush serve --help = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(stderr.String(), "--max-frame-size") {
		t.Errorf("wspush serve --help wrote no flag list:\n%s", stderr.String())
	}
}

func TestSizeValue(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"65536", 65536, true},
		{"0", 0, true},
		{"64KiB", 64 << 10, true},
		{"64KB", 64 << 10, true},
		{"64K", 64 << 10, true},
		{"1MiB", 1 << 20, true},
		{"3MB", 3 << 20, true},
		{"2M", 2 << 20, true},
		{"100B", 100, true},
		{" 1 MiB ", 1 << 20, true},
		{"8796093022207MiB", 8796093022207 << 20, true}, // the largest that fits
		{"8796093022208MiB", 0, false},                  // overflows int64
		{"9223372036854775807KiB", 0, false},
		{"", 0, false},
		{"KiB", 0, false},
		{"-1", 0, false},
		{"-1KiB", 0, false},
		{"1.5MiB", 0, false},
		{"1GiB", 0, false},
		{"64XB", 0, false},
		{"lots", 0, false},
	} {
		var s size
		err := s.Set(tt.in)
		if (err == nil) != tt.ok || (tt.ok && int64(s) != tt.want) {
			t.Errorf("size.Set(%q) = %d, %v; want %d, ok %v", tt.in, s, err, tt.want, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) {
			t.Errorf("size.Set(%q) error %q does not quote the input", tt.in, err)
		}
	}
	for _, tt := range []struct {
		n    size
		want string
	}{{0, "0"}, {1000, "1000"}, {1024, "1KiB"}, {64 << 10, "64KiB"}, {1 << 20, "1MiB"}, {3 << 20, "3MiB"}, {1536, "1536"}} {
		if got := tt.n.String(); got != tt.want {
			t.Errorf("size(%d).String() = %q, want %q", int64(tt.n), got, tt.want)
		}
		var back size
		if err := back.Set(tt.n.String()); err != nil || back != tt.n {
			t.Errorf("size round trip %d -> %q -> %d, %v", int64(tt.n), tt.n.String(), int64(back), err)
		}
	}
}

func TestListValue(t *testing.T) {
	l := listValue{"old"}
	if err := l.Set(" a, b,,c ,"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual([]string(l), []string{"a", "b", "c"}) || l.String() != "a,b,c" {
		t.Errorf("listValue.Set = %q (%q), want [a b c]", []string(l), l.String())
	}
	if err := l.Set(""); err != nil || len(l) != 0 {
		t.Errorf("listValue.Set(\"\") = %q, %v; want empty", []string(l), err)
	}
}

func TestRunVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{"wspush", arg}, env(), strings.NewReader(""), &stdout, &stderr); err != nil {
			t.Fatalf("wspush %s: %v", arg, err)
		}
		out := strings.TrimSpace(stdout.String())
		v, ok := strings.CutPrefix(out, "wspush ")
		if !ok || v == "" || strings.ContainsAny(v, " \n") {
			t.Errorf("wspush %s printed %q, want \"wspush <version>\"", arg, out)
		}
		if stderr.Len() > 0 {
			t.Errorf("wspush %s wrote to stderr: %q", arg, stderr.String())
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"wspush"},
		{"wspush", "frobnicate"},
		{"wspush", "--serve"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, env(), strings.NewReader(""), &stdout, &stderr)
		if err == nil {
			t.Fatalf("run(%q) succeeded", args)
		}
		if code := exitCode(err); code != 2 {
			t.Errorf("run(%q) = %v, exit code %d; want 2", args, err, code)
		}
		if !strings.Contains(stderr.String(), "Usage:") {
			t.Errorf("run(%q) printed no usage on stderr: %q", args, stderr.String())
		}
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"wspush", "help"}, env(), strings.NewReader(""), &stdout, io.Discard); err != nil {
		t.Fatalf("wspush help: %v", err)
	}
	if !strings.Contains(stdout.String(), "wspush serve") {
		t.Errorf("wspush help printed %q", stdout.String())
	}
	if code := exitCode(errors.New("broker down")); code != 1 {
		t.Errorf("exitCode(runtime error) = %d, want 1", code)
	}
}

func TestPublishData(t *testing.T) {
	for _, tt := range []struct {
		text, format, want string
		ok                 bool
	}{
		{"hello", "auto", `"hello"`, true},
		{`{"a":1}`, "auto", `{"a":1}`, true},
		{"42", "auto", `42`, true},
		{"true", "auto", `true`, true},
		{`"quoted"`, "auto", `"quoted"`, true},
		{"", "auto", `""`, true},
		{"{broken", "auto", `"{broken"`, true},
		{"a \"b\"\n<c>", "auto", `"a \"b\"\n\u003cc\u003e"`, true},
		{`{"a":1}`, "json", `{"a":1}`, true},
		{"null", "json", `null`, true},
		{"hello", "json", ``, false},
		{"", "json", ``, false},
		{`{"a":1}`, "string", `"{\"a\":1}"`, true},
		{"42", "string", `"42"`, true},
		{"hello", "yaml", ``, false},
		{"hello", "", ``, false},
	} {
		got, err := publishData(tt.text, tt.format)
		if (err == nil) != tt.ok {
			t.Errorf("publishData(%q, %q) error = %v, want ok %v", tt.text, tt.format, err, tt.ok)
			continue
		}
		if tt.ok && string(got) != tt.want {
			t.Errorf("publishData(%q, %q) = %s, want %s", tt.text, tt.format, got, tt.want)
		}
		if tt.ok && !json.Valid(got) {
			t.Errorf("publishData(%q, %q) = %s: not JSON", tt.text, tt.format, got)
		}
	}
}

// TestPublishUsageErrors checks the argument handling of wspush publish:
// every mistake is a usage error, found before any request is sent (the
// server address accepts no connections).
func TestPublishUsageErrors(t *testing.T) {
	noServer := []string{"--server", "http://127.0.0.1:1", "--timeout", "2s"}
	for _, tt := range []struct {
		name    string
		args    []string
		stdin   string
		wantHas string
	}{
		{"missing DATA", []string{"--channel", "chat"}, "", "exactly one DATA"},
		{"two DATA", []string{"--channel", "chat", "a", "b"}, "", "exactly one DATA"},
		{"channel and broadcast", []string{"--channel", "chat", "--broadcast", "hi"}, "", "--channel or --broadcast"},
		{"neither channel nor broadcast", []string{"hi"}, "", "--channel or --broadcast"},
		{"empty channel list", []string{"--channel", " , ", "hi"}, "", "--channel or --broadcast"},
		{"bad format", []string{"--channel", "chat", "--format", "xml", "hi"}, "", "--format"},
		{"invalid json", []string{"--channel", "chat", "--format", "json", "{nope"}, "", "not valid JSON"},
		{"invalid json on stdin", []string{"--channel", "chat", "--format", "json", "-"}, "{nope\n", "not valid JSON"},
		{"unknown flag", []string{"--chanel", "chat", "hi"}, "", "chanel"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"wspush", "publish"}, noServer...), tt.args...)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, env(), strings.NewReader(tt.stdin), &stdout, &stderr)
			if err == nil {
				t.Fatalf("run(%q) succeeded", args)
			}
			if exitCode(err) != 2 {
				t.Fatalf("run(%q) = %v (exit code %d), want a usage error", args, err, exitCode(err))
			}
			if !strings.Contains(err.Error(), tt.wantHas) {
				t.Errorf("error %q does not contain %q", err, tt.wantHas)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
		})
	}
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"wspush", "publish", "--help"}, env(), strings.NewReader(""), io.Discard, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("wspush publish --help = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(stderr.String(), "-channel") || !strings.Contains(stderr.String(), "-broadcast") {
		t.Errorf("wspush publish --help:\n%s", stderr.String())
	}
}

// TestPublishSends checks what wspush publish sends, against a stand-in
// for the server's API.
func TestPublishSends(t *testing.T) {
	type request struct {
		path, auth string
		body       map[string]json.RawMessage
	}
	got := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&body)
		got <- request{r.URL.Path, r.Header.Get("Authorization"), body}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	for _, tt := range []struct {
		name  string
		args  []string
		env   []string
		stdin string
		path  string
		want  map[string]string
		auth  string
	}{
		{name: "string", args: []string{"--channel", "chat", "hello"}, path: "/api/publish",
			want: map[string]string{"channel": `"chat"`, "data": `"hello"`}},
		{name: "json channels", args: []string{"--channel", "a,b", `{"x":1}`}, path: "/api/publish",
			want: map[string]string{"channels": `["a","b"]`, "data": `{"x":1}`}},
		{name: "stdin", args: []string{"--channel", "chat", "--format", "json", "-"}, stdin: "[1,2]\r\n", path: "/api/publish",
			want: map[string]string{"channel": `"chat"`, "data": `[1,2]`}},
		{name: "broadcast with key from env", args: []string{"--broadcast", "--format", "string", "42"}, env: []string{"WSPUSH_API_KEY", "k3y"},
			path: "/api/broadcast", want: map[string]string{"data": `"42"`}, auth: "Bearer k3y"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"wspush", "publish", "--server", srv.URL}, tt.args...)
			var stdout bytes.Buffer
			if err := run(context.Background(), args, env(tt.env...), strings.NewReader(tt.stdin), &stdout, io.Discard); err != nil {
				t.Fatalf("run(%q): %v", args, err)
			}
			if strings.TrimSpace(stdout.String()) != "ok" {
				t.Errorf("stdout = %q, want ok", stdout.String())
			}
			var r request
			select {
			case r = <-got:
			default:
				t.Fatal("no request reached the server")
			}
			if r.path != tt.path || r.auth != tt.auth {
				t.Errorf("request to %s with auth %q, want %s with %q", r.path, r.auth, tt.path, tt.auth)
			}
			if len(r.body) != len(tt.want) {
				t.Errorf("body %v, want %v", r.body, tt.want)
			}
			for k, v := range tt.want {
				if string(r.body[k]) != v {
					t.Errorf("body[%s] = %s, want %s", k, r.body[k], v)
				}
			}
		})
	}
}
