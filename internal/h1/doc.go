// Package h1 answers the publish API's HTTP/1.1 requests without net/http,
// and hands every other connection to net/http.
//
// A backend publishes over a few keep-alive connections, one small request
// per message. net/http spends most of such a request's CPU on itself: a
// background read per request that watches for a disconnect, header maps
// built by a general parser, response buffering, deadlines. Here the first
// request line of an accepted connection is peeked, not read: when
// Config.Fast accepts its method and path, the connection is served here
// from then on, by a goroutine that reads with a pooled buffer (none while
// the connection is idle), answers every whole request it read, and writes
// the answers with one write call; otherwise the connection is handed to
// net/http untouched, through the Listener that the http.Server serves. A
// connection served here that later sends anything this package leaves to
// net/http (another route, a chunked body, Expect, a head over 8 KiB, a
// malformed request) is handed over too, with the bytes already read. Both
// paths run the same handlers, so they answer alike.
package h1
