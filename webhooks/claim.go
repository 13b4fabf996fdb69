package webhooks

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisClaimer claims dedupe keys in Redis.
type redisClaimer struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedisClaimer returns a Claimer that claims a key in Redis with SET NX
// and the ttl as its expiry, the replica's name as the value: the replica
// that set it, or that finds its own name there, holds the claim. Keys are
// prefix + the dedupe key.
//
// While Redis does not answer, Claim returns its error and the service
// delivers anyway (at least once rather than at most once): a callback
// Exotel sent to two replicas during the outage may reach the target once
// from each, under two webhook-ids. A target that must not act twice
// deduplicates on the callback's own CallSid/SmsSid and Status.
func NewRedisClaimer(c redis.UniversalClient, prefix string) Claimer {
	return redisClaimer{c: c, prefix: prefix}
}

// claimScript sets the claim if there is none (SET NX PX) and reports
// whether the replica holds it, in one step: a script, so that a claim
// cannot expire between the SET and the GET, on any Redis version (SET
// takes NX with GET only from 7.0).
var claimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
`)

// Claim implements Claimer.
func (r redisClaimer) Claim(ctx context.Context, key, replica string, ttl time.Duration) (bool, error) {
	ms := max(ttl.Milliseconds(), 1)
	n, err := claimScript.Run(ctx, r.c, []string{r.prefix + key}, replica, ms).Int()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}
