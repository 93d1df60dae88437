package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/wspush/wspush"
	"github.com/wspush/wspush/internal/broker/memory"
	"github.com/wspush/wspush/internal/broker/nats"
	"github.com/wspush/wspush/internal/broker/redis"
	"github.com/wspush/wspush/internal/h1"
	"github.com/wspush/wspush/internal/httpapi"
	"github.com/wspush/wspush/internal/hub"
	"github.com/wspush/wspush/internal/protocol/native"
	"github.com/wspush/wspush/internal/ws"
)

// runServe runs the server until ctx is done, then stops gracefully:
// it stops accepting, closes every WebSocket with 1001, lets in-flight API
// requests finish, and returns within the shutdown timeout.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)

	broker, err := newBroker(logger, cfg)
	if err != nil {
		return err
	}
	h := hub.New(broker)
	origins, _ := ws.NewOrigins(cfg.AllowedOrigins) // validated
	namespaces := wspush.NewNamespaces(cfg.DefaultNamespace, cfg.Namespaces)
	wsSrv := ws.NewServer(logger, ws.Config{
		ReadLimit:        int(cfg.MaxFrameSize),
		PingInterval:     cfg.PingInterval,
		PongTimeout:      cfg.PongTimeout,
		WriteTimeout:     cfg.WriteTimeout,
		QueueMaxMessages: cfg.QueueMaxMessages,
		QueueMaxBytes:    int(cfg.QueueMaxBytes),
		Origins:          origins,
	})
	if cfg.builtinNamespaces {
		cfg.Namespaces = fitBroker(logger, broker, cfg.Namespaces)
		namespaces = wspush.NewNamespaces(cfg.DefaultNamespace, cfg.Namespaces)
	}
	history, presence, err := brokerFeatures(broker, namespaces)
	if err != nil {
		return err
	}
	proto := native.New(logger, native.Config{
		Namespaces:       namespaces,
		MaxSubscriptions: cfg.MaxSubscriptions,
		MaxChannelLength: cfg.MaxChannelLength,
		RateLimit:        cfg.ClientRateLimit,
		RateBurst:        cfg.ClientRateBurst,
		PingInterval:     cfg.PingInterval,
		History:          history,
		Presence:         presence,
		// Half the send queue: room for live messages meanwhile.
		RecoveryMaxMessages: max(1, cfg.QueueMaxMessages/2),
		ReplyMaxBytes:       max(1, int(cfg.QueueMaxBytes)/2),
	}, h)
	var front *h1.Server // serves the publish API; made once the listener is
	apiCfg := httpapi.Config{
		APIKey:           cfg.APIKey,
		MaxPublishSize:   int64(cfg.MaxPublishSize),
		MaxChannelLength: cfg.MaxChannelLength,
		Namespaces:       namespaces,
		Version:          version(),
		BrokerName:       cfg.Broker,
		History:          history,
		Presence:         presence,
	}
	if h1.Supported {
		apiCfg.DirectRequests = func() uint64 { return front.Stats().Served }
	}
	handler := httpapi.NewServer(logger, apiCfg, h, broker, wsSrv, proto)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	// Publishes are served by package h1, the rest by net/http.
	front = h1.NewServer(logger, ln, h1.Config{
		Handler:           httpapi.NewPublishHandler(apiCfg, h),
		Fast:              httpapi.IsPublish,
		MaxBodySize:       int64(cfg.MaxPublishSize),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		WriteTimeout:      cfg.WriteTimeout,
	})
	fresh := newConnTracker()
	httpSrv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		ConnState:         fresh.track,
	}

	// Every goroutine below is owned here and waited for before returning.
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Go(func() { errc <- named("broker", broker.Run(runCtx, h)) })
	wg.Go(func() { errc <- named("websocket server", wsSrv.Run(runCtx)) })
	select {
	case <-wsSrv.Started():
	case err := <-errc:
		stopRun()
		wg.Wait()
		return err
	}
	if !waitReady(broker, brokerStartTimeout) {
		// Serve anyway: connections are accepted, /readyz says not ready
		// and publishes answer 503 until the broker is up.
		logger.Warn("broker not ready yet", "broker", cfg.Broker, "err", broker.Ready())
	}
	served := ln
	if h1.Supported {
		served = front.Listener()
		wg.Go(func() { errc <- named("api server", front.Run(runCtx)) })
	}
	wg.Go(func() {
		if err := httpSrv.Serve(served); !errors.Is(err, http.ErrServerClosed) {
			errc <- named("http server", err)
		}
	})

	if cfg.APIKey == "" {
		logger.Warn("no API key set: the publish API answers loopback callers only; set --api-key or WSPUSH_API_KEY to publish from other hosts")
	}
	logger.Info("listening", "addr", ln.Addr().String(), "url", "http://"+displayAddr(ln.Addr()), "broker", cfg.Broker, "api_key", cfg.APIKey != "", "version", version())

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	case runErr = <-errc:
		logger.Error("stopping", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// First the API: no new requests, and those in flight finish while
	// the WebSockets still deliver what they publish (an acknowledged
	// publish reaches this node's subscribers). At most half the time goes
	// there; then every WebSocket is closed with 1001 after its queued
	// frames.
	apiCtx, cancelAPI := context.WithTimeout(sctx, cfg.ShutdownTimeout/2)
	defer cancelAPI()
	var stopping sync.WaitGroup
	stopping.Go(func() {
		// Shutdown waits 5 s for a connection that has not sent a request
		// yet (browsers open spare ones); such a connection has nothing in
		// flight, so it is closed now.
		fresh.closeAll()
		if err := httpSrv.Shutdown(apiCtx); err != nil {
			logger.Warn("http shutdown incomplete", "err", err)
			_ = httpSrv.Close()
		}
	})
	stopping.Go(func() {
		if err := front.Shutdown(apiCtx); err != nil {
			logger.Warn("api shutdown incomplete", "err", err)
		}
	})
	stopping.Wait()
	if err := wsSrv.Shutdown(sctx); err != nil {
		logger.Warn("websocket shutdown incomplete: remaining connections cut off", "err", err)
	}
	stopRun()
	wg.Wait()
	close(errc)
	for err := range errc {
		if runErr == nil && err != nil {
			runErr = err
		}
	}
	logger.Info("stopped")
	return runErr
}

// Timeouts of HTTP connections, the same on both paths.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// named prefixes a component's error with its name.
func named(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// displayAddr is the address to show a user: localhost for a wildcard.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return fmt.Sprintf("localhost:%d", tcp.Port)
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// connTracker keeps the HTTP connections that have not sent a request yet.
type connTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func newConnTracker() *connTracker { return &connTracker{conns: map[net.Conn]struct{}{}} }

// track is the http.Server's ConnState hook.
func (t *connTracker) track(c net.Conn, state http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if state == http.StateNew {
		t.conns[c] = struct{}{}
	} else {
		delete(t.conns, c)
	}
}

// closeAll closes the connections that are still waiting for a request.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		_ = c.Close()
		delete(t.conns, c)
	}
}

// brokerFeatures returns the broker's history and presence, and an error
// when a namespace asks for one the broker lacks.
func brokerFeatures(b wspush.Broker, ns wspush.Namespaces) (wspush.History, wspush.Presence, error) {
	history, _ := b.(wspush.History)
	presence, _ := b.(wspush.Presence)
	var errs []error
	ns.Each(func(name string, o wspush.ChannelOptions) {
		if name == "" {
			name = "default_namespace"
		}
		if o.HistorySize > 0 && history == nil {
			errs = append(errs, fmt.Errorf("namespace %s: history_size is set, but this broker keeps no history", name))
		}
		if o.Presence && presence == nil {
			errs = append(errs, fmt.Errorf("namespace %s: presence is on, but this broker keeps no presence", name))
		}
	})
	return history, presence, errors.Join(errs...)
}

// brokerStartTimeout bounds the wait for the broker before serving.
const brokerStartTimeout = 5 * time.Second

// waitReady polls b until it is ready or d has passed.
func waitReady(b wspush.Broker, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for b.Ready() != nil {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// newBroker makes the configured broker.
func newBroker(logger *slog.Logger, cfg config) (wspush.Broker, error) {
	switch cfg.Broker {
	case "redis":
		return redis.New(logger.With("broker", "redis"), redis.Config{URL: cfg.RedisURL, Prefix: cfg.RedisPrefix})
	case "nats":
		return nats.New(logger.With("broker", "nats"), nats.Config{URL: cfg.NATSURL, MaxMessage: int64(max(cfg.MaxPublishSize, cfg.MaxFrameSize))})
	default:
		return memory.New(), nil
	}
}

// fitBroker turns off, in the built-in namespaces, the history and
// presence that broker lacks, so that the demo runs on any broker.
func fitBroker(logger *slog.Logger, b wspush.Broker, list []wspush.NamespaceOptions) []wspush.NamespaceOptions {
	_, hasHistory := b.(wspush.History)
	_, hasPresence := b.(wspush.Presence)
	out := slices.Clone(list)
	for i := range out {
		o := &out[i].ChannelOptions
		if (o.HistorySize > 0 && !hasHistory) || (o.Presence && !hasPresence) {
			logger.Info("this broker keeps no history or presence: the built-in namespace runs without them", "namespace", out[i].Name)
		}
		if !hasHistory {
			o.HistorySize, o.HistoryTTL = 0, 0
		}
		if !hasPresence {
			o.Presence = false
		}
	}
	return out
}
