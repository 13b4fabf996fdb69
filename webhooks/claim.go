package webhooks

import (
	"context"
	"errors"
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
// prefix + the dedupe key. It needs Redis 7.0 or later (SET with both NX
// and GET).
//
// While Redis does not answer, Claim returns its error and the service
// delivers anyway (at least once rather than at most once): a callback
// Exotel sent to two replicas during the outage may reach the target once
// from each, under two webhook-ids. A target that must not act twice
// deduplicates on the callback's own CallSid/SmsSid and Status.
func NewRedisClaimer(c redis.UniversalClient, prefix string) Claimer {
	return redisClaimer{c: c, prefix: prefix}
}

// Claim implements Claimer in one command (SET NX GET), so that a claim
// that expires between two commands cannot be lost.
func (r redisClaimer) Claim(ctx context.Context, key, replica string, ttl time.Duration) (bool, error) {
	prev, err := r.c.SetArgs(ctx, r.prefix+key, replica, redis.SetArgs{Mode: "NX", TTL: ttl, Get: true}).Result()
	if errors.Is(err, redis.Nil) {
		return true, nil // set: there was no claim
	}
	if err != nil {
		return false, err
	}
	return prev == replica, nil
}
