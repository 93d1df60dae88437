// Package loadtest is the engine of `wspush bench`: it opens many WebSocket
// connections to a push server, subscribes them, publishes through the
// server's HTTP API, and measures what comes back.
//
// Three runs are offered: [RunConns] (connect rate and the server's memory
// per idle subscribed connection), [RunFanout] (deliveries, losses,
// duplicates, publish-to-receive latency and the server's CPU cost per
// delivery) and [RunPublish] (API publish throughput). Each returns a
// [Report], which prints as text ([Report.WriteText]), JSON, or a
// self-contained HTML page ([Report.WriteHTML]).
//
// # Measuring the server, not the client
//
// The receive path is built so that the client is not the bottleneck: one
// goroutine per connection reads frames with a small hand-written RFC 6455
// frame reader into a buffer it reuses (gorilla/websocket only does the
// handshake), picks "ts" and "seq" out of each push with an allocation-free
// JSON scan, deduplicates with a bitset per subscriber, and records latency
// in a striped, lock-free log-linear histogram. Nothing on that path
// allocates.
//
// # Where load may go
//
// Targets must be loopback addresses unless [Target.AllowRemote] is set, and
// client connections are spread over the source addresses 127.0.0.1 to
// 127.0.0.K to get past the ephemeral-port limit of one address pair.
package loadtest
