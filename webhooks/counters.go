package webhooks

import "sync"

// Counters are the callback path's cumulative counts, for the gateway's
// metrics.
type Counters struct {
	// Received counts callbacks by outcome: accepted, duplicate, variant,
	// or the refusal's reason (method, source, token, size, payload,
	// store).
	Received map[string]uint64
	// Attempts counts delivery attempts by result: delivered, failed,
	// timeout, gone, breaker_open, forged, claimed.
	Attempts  map[string]uint64
	Delivered uint64 // messages delivered
	Dead      uint64 // messages given up on
	Polled    uint64 // synthetic callbacks accepted from reconciliation
}

// Received outcomes and refusal reasons.
const (
	recvAccepted  = "accepted"
	recvDuplicate = "duplicate"
	recvVariant   = "variant"
	refuseMethod  = "method"
	refuseSource  = "source"
	refuseToken   = "token"
	refuseSize    = "size"
	refusePayload = "payload"
	refuseStore   = "store"
)

// Attempt results.
const (
	resDelivered   = "delivered"
	resFailed      = "failed"
	resTimeout     = "timeout"
	resGone        = "gone"
	resBreakerOpen = "breaker_open"
	resForged      = "forged"
	resClaimed     = "claimed"
)

// counters is Counters behind a mutex.
type counters struct {
	mu sync.Mutex
	c  Counters
}

func (c *counters) init() {
	c.c.Received = make(map[string]uint64)
	c.c.Attempts = make(map[string]uint64)
	for _, k := range []string{recvAccepted, recvDuplicate, recvVariant, refuseMethod, refuseSource,
		refuseToken, refuseSize, refusePayload, refuseStore} {
		c.c.Received[k] = 0
	}
	for _, k := range []string{resDelivered, resFailed, resTimeout, resGone, resBreakerOpen, resForged, resClaimed} {
		c.c.Attempts[k] = 0
	}
}

func (c *counters) received(outcome string) {
	c.mu.Lock()
	c.c.Received[outcome]++
	c.mu.Unlock()
}

// attempt counts an attempt's result and what it did to the message.
func (c *counters) attempt(result string, st State) {
	c.mu.Lock()
	c.c.Attempts[result]++
	switch st {
	case StateDelivered:
		c.c.Delivered++
	case StateDead:
		c.c.Dead++
	}
	c.mu.Unlock()
}

func (c *counters) polled() {
	c.mu.Lock()
	c.c.Polled++
	c.mu.Unlock()
}

// Counters returns a copy of the cumulative counts.
func (s *Service) Counters() Counters {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	out := s.stats.c
	out.Received = make(map[string]uint64, len(s.stats.c.Received))
	for k, v := range s.stats.c.Received {
		out.Received[k] = v
	}
	out.Attempts = make(map[string]uint64, len(s.stats.c.Attempts))
	for k, v := range s.stats.c.Attempts {
		out.Attempts[k] = v
	}
	return out
}
