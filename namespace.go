package wspush

// ChannelOptions are the settings of a channel namespace.
type ChannelOptions struct {
	// ClientPublish lets clients publish to the namespace's channels over
	// their WebSocket; otherwise only the server API publishes.
	ClientPublish bool `yaml:"client_publish" json:"client_publish"`
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
