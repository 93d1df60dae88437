package wspush_test

import (
	"testing"

	"github.com/wspush/wspush"
)

func TestNamespacesLookup(t *testing.T) {
	ns := wspush.NewNamespaces(wspush.ChannelOptions{ClientPublish: true}, []wspush.NamespaceOptions{
		{Name: "chat", ChannelOptions: wspush.ChannelOptions{ClientPublish: true}},
		{Name: "news", ChannelOptions: wspush.ChannelOptions{ClientPublish: false}},
	})
	for _, tt := range []struct {
		channel     string
		wantOK      bool
		wantPublish bool
	}{
		{"lobby", true, true},       // default namespace
		{"chat:room1", true, true},  // configured
		{"news:sport", true, false}, // configured, stricter
		{"news", true, true},        // no ':' means the default namespace, even if named like one
		{"admin:x", false, false},   // unknown
		{":x", true, true},          // empty namespace is the default one
	} {
		opts, ok := ns.Lookup(tt.channel)
		if ok != tt.wantOK || opts.ClientPublish != tt.wantPublish {
			t.Errorf("Lookup(%q) = %+v, %v; want ClientPublish %v, %v", tt.channel, opts, ok, tt.wantPublish, tt.wantOK)
		}
	}

	strict := wspush.NewNamespaces(wspush.ChannelOptions{}, nil)
	if opts, ok := strict.Lookup("lobby"); !ok || opts.ClientPublish {
		t.Errorf("Lookup with a strict default = %+v, %v; want ClientPublish false, true", opts, ok)
	}
	if _, ok := strict.Lookup("chat:x"); ok {
		t.Errorf("Lookup(chat:x) with no named namespaces reports ok")
	}

	var zero wspush.Namespaces
	if opts, ok := zero.Lookup("lobby"); !ok || opts.ClientPublish {
		t.Errorf("zero Namespaces: Lookup(lobby) = %+v, %v; want zero options, true", opts, ok)
	}
	if _, ok := zero.Lookup("chat:x"); ok {
		t.Errorf("zero Namespaces: Lookup(chat:x) reports ok")
	}
}
