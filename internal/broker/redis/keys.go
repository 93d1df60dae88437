package redis

// Redis names. The channel name is in braces, a hash tag: should wspush
// support Redis Cluster one day, a channel's keys share a slot.

func (b *Broker) pubsubChannel(ch string) string { return b.cfg.Prefix + ".ch.{" + ch + "}" }

// broadcastChannel holds a character no wspush channel name may have, so
// it cannot collide with one.
func (b *Broker) broadcastChannel() string { return b.cfg.Prefix + ".broadcast!" }

func (b *Broker) streamKey(ch string) string { return b.cfg.Prefix + ":stream:{" + ch + "}" }
func (b *Broker) metaKey(ch string) string   { return b.cfg.Prefix + ":meta:{" + ch + "}" }
func (b *Broker) presenceZ(ch string) string { return b.cfg.Prefix + ":presence:z:{" + ch + "}" }
func (b *Broker) presenceH(ch string) string { return b.cfg.Prefix + ":presence:h:{" + ch + "}" }
func (b *Broker) channelOf(pubsub string) string {
	p := b.cfg.Prefix + ".ch.{"
	if len(pubsub) < len(p)+1 || pubsub[:len(p)] != p {
		return ""
	}
	return pubsub[len(p) : len(pubsub)-1]
}
