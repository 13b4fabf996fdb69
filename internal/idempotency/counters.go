package idempotency

// The events Keys counts, by their name in Counts.
const (
	evReserved = iota
	evReplayed
	evConflict
	evMismatch
	evUnknown
	evReleased
	evBackendError
	numEvents
)

var eventNames = [numEvents]string{
	evReserved:     "reserved",
	evReplayed:     "replayed",
	evConflict:     "conflict",
	evMismatch:     "mismatch",
	evUnknown:      "outcome_unknown",
	evReleased:     "released",
	evBackendError: "backend_error",
}

func (k *Keys) count(ev int) { k.counts[ev].Add(1) }

// Counts returns how often each event happened since Keys was made:
// reserved (a first request took its key), replayed (a repeat got the
// kept answer), conflict (a repeat while the first was in flight),
// mismatch (a key reused for another request), outcome_unknown (a key
// whose request was sent and its answer lost), released (a key freed
// because nothing reached Exotel or Exotel acted on nothing) and
// backend_error.
func (k *Keys) Counts() map[string]uint64 {
	out := make(map[string]uint64, numEvents)
	for i, name := range eventNames {
		out[name] = k.counts[i].Load()
	}
	return out
}
