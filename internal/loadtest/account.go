package loadtest

// account counts what subscribers received against what they should have
// received. issued is how many sequence numbers were handed out (0 to
// issued-1) and failed holds those whose publish call did not return 2xx:
// each of the other messages is expected once on every subscriber.
// Deliveries of failed or never-issued sequence numbers are reported as
// unexpected, not delivered; repeats as duplicates.
func account(subs []*subscriber, issued int64, failed *seqSet) DeliveryStats {
	okSeqs := issued - failed.countBelow(issued)
	d := DeliveryStats{Subscribers: len(subs), Expected: okSeqs * int64(len(subs))}
	for _, s := range subs {
		valid := s.seen.countBelow(issued) - s.seen.countCommon(failed)
		d.Delivered += valid
		d.Unexpected += s.seen.len() - valid
		d.Duplicates += s.dups
		d.Malformed += s.malformed
	}
	d.Lost = d.Expected - d.Delivered
	return d
}
