package wspush

import "time"

// ChannelOptions are the settings of a channel namespace.
type ChannelOptions struct {
	// ClientPublish lets clients publish to the namespace's channels over
	// their WebSocket; otherwise only the server API publishes.
	ClientPublish bool `yaml:"client_publish" json:"client_publish"`
	// HistorySize is how many recent messages each channel keeps for
	// history and recovery on reconnect (0: none).
	HistorySize int `yaml:"history_size" json:"history_size"`
	// HistoryTTL is how long a message stays in the history.
	HistoryTTL time.Duration `yaml:"history_ttl" json:"history_ttl"`
	// Presence keeps the list of each channel's subscribers.
	Presence bool `yaml:"presence" json:"presence"`
	// JoinLeave pushes join and leave messages to a channel's subscribers
	// when a client subscribes or leaves.
	JoinLeave bool `yaml:"join_leave" json:"join_leave"`
}

// PublishOptions returns how the broker keeps the namespace's publications.
func (o ChannelOptions) PublishOptions() PublishOptions {
	return PublishOptions{HistorySize: o.HistorySize, HistoryTTL: o.HistoryTTL}
}

// NamespaceOptions are a named namespace's settings.
type NamespaceOptions struct {
	Name           string `yaml:"name" json:"name"`
	ChannelOptions `yaml:",inline" json:",inline"`
}

// Namespaces resolves a channel to the options of its namespace.
type Namespaces struct {
	Default ChannelOptions
	named   map[string]ChannelOptions
}

// NewNamespaces returns the namespaces with the given default options and
// named ones. A channel whose namespace is not listed does not exist.
func NewNamespaces(def ChannelOptions, named []NamespaceOptions) Namespaces {
	n := Namespaces{Default: def, named: make(map[string]ChannelOptions, len(named))}
	for _, o := range named {
		n.named[o.Name] = o.ChannelOptions
	}
	return n
}

// Lookup returns the options of channel's namespace, and false when the
// namespace is not configured.
func (n Namespaces) Lookup(channel string) (ChannelOptions, bool) {
	ns := Namespace(channel)
	if ns == "" {
		return n.Default, true
	}
	o, ok := n.named[ns]
	return o, ok
}

// Each calls f for the default namespace (name "") and every named one.
func (n Namespaces) Each(f func(name string, o ChannelOptions)) {
	f("", n.Default)
	for name, o := range n.named {
		f(name, o)
	}
}
