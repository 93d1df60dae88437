// Package h1 answers the publish API's HTTP/1.1 requests from an epoll loop
// and hands every other connection to net/http.
//
// A backend publishes over a few keep-alive connections, one small request
// per message. net/http spends most of such a request's CPU on itself: a
// goroutine per connection woken for each request, a background read that
// watches for a disconnect, a deadline and response buffering per request.
// Here an accepted connection is registered with netpoll and its first
// request line is peeked, not read: when Config.Fast accepts its method and
// path, the connection is served here from then on (read with a pooled
// buffer when it has data, written with one write call per batch of
// responses); otherwise it is handed to net/http untouched, through the
// Listener that the http.Server serves. A connection served here that later
// sends anything this package leaves to net/http (another route, a chunked
// body, Expect, a head over 8 KiB, a malformed request) is handed over too,
// with the bytes already read. Both paths run the same http.Handler, so
// they answer alike.
package h1
