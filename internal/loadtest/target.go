package loadtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Target says where the load goes and how to speak to it.
type Target struct {
	URL     string // WebSocket URL, ws://127.0.0.1:7777/ws
	API     string // publish API URL, http://127.0.0.1:7777/api/publish (fanout, publish)
	APIKey  string // sent as Authorization: Bearer (native)
	Channel string // channel to subscribe and publish to
	Proto   Proto
	// SrcIPs spreads client connections over the source addresses
	// 127.0.0.1 to 127.0.0.SrcIPs (0: the kernel picks). Each address pair
	// has about 28,000 ephemeral ports.
	SrcIPs int
	// Timeout bounds each handshake, subscribe and publish call.
	Timeout time.Duration
	// AllowRemote permits targets that are not loopback addresses.
	AllowRemote bool
}

// Defaults for a Target's zero fields.
const (
	DefaultChannel = "bench"
	DefaultSrcIPs  = 8
	DefaultTimeout = 10 * time.Second
)

// withDefaults fills zero fields.
func (t Target) withDefaults() Target {
	if t.Channel == "" {
		t.Channel = DefaultChannel
	}
	if t.Proto == "" {
		t.Proto = Native
	}
	if t.Timeout <= 0 {
		t.Timeout = DefaultTimeout
	}
	return t
}

// check validates the target; needAPI says whether the run publishes.
func (t Target) check(needAPI bool) error {
	if _, err := ParseProto(string(t.Proto)); err != nil {
		return err
	}
	if t.URL == "" {
		return errors.New("--url is required")
	}
	// wss is refused: the client reads raw frames from the socket, under
	// which TLS would sit. Measure over ws:// next to the TLS terminator.
	if err := checkURL("--url", t.URL, []string{"ws"}, t.AllowRemote); err != nil {
		return err
	}
	if needAPI {
		if t.API == "" {
			return errors.New("--api is required")
		}
		if err := checkURL("--api", t.API, []string{"http", "https"}, t.AllowRemote); err != nil {
			return err
		}
	}
	if t.SrcIPs < 0 || t.SrcIPs > 254 {
		return fmt.Errorf("--src-ips %d: want 0 to 254", t.SrcIPs)
	}
	return nil
}

// checkURL checks that u parses, has one of the schemes, and (unless
// remote targets are allowed) names a loopback host.
func checkURL(flag, u string, schemes []string, allowRemote bool) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	ok := false
	for _, s := range schemes {
		ok = ok || p.Scheme == s
	}
	if p.Scheme == "wss" && !ok {
		return fmt.Errorf("%s %q: wss:// is not supported: the client reads raw frames from the socket; measure over ws:// (next to the TLS terminator)", flag, u)
	}
	if !ok || p.Host == "" {
		return fmt.Errorf("%s %q: want a %s://HOST:PORT/... URL", flag, u, schemes[0])
	}
	if !allowRemote && !isLoopback(p.Hostname()) {
		return fmt.Errorf("%s %q: %s is not a loopback address; load goes to 127.0.0.1, ::1 or localhost only, unless --allow-remote is given", flag, u, p.Hostname())
	}
	return nil
}

// isLoopback reports whether host is a loopback IP address or "localhost".
// Names are not resolved: a name that merely points at 127.0.0.1 is refused.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sourceIPs returns the local addresses to dial from: none when the target
// is not loopback (a 127.0.0.x source cannot reach it) or SrcIPs is 0.
func (t Target) sourceIPs() []net.IP {
	p, err := url.Parse(t.URL)
	if err != nil || t.SrcIPs == 0 || !isLoopback(p.Hostname()) || strings.Contains(p.Hostname(), ":") {
		return nil
	}
	ips := make([]net.IP, t.SrcIPs)
	for k := range ips {
		ips[k] = net.IPv4(127, 0, 0, byte(k+1))
	}
	return ips
}
