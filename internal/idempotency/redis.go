package idempotency

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Backend in Redis, shared by every replica: a key is one
// string, reserved with SET NX and changed only by a script that compares
// it first, so that two replicas never both hold a key. Entries expire
// with Redis's own TTL.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

// NewRedis makes a Redis backend on client, its keys under prefix (such
// as "exogate:idem:").
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// swapScript replaces KEYS[1] if it holds ARGV[1]: with ARGV[2] for
// ARGV[3] milliseconds, or deletes it when ARGV[2] is empty.
var swapScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
	redis.call('DEL', KEYS[1])
else
	redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1`)

// Add implements Backend: SET NX, and GET of what is held when it is
// taken (the two in one script, so that an expiry between them cannot
// leave the caller with nothing).
func (r *Redis) Add(ctx context.Context, key string, val []byte, ttl time.Duration) ([]byte, error) {
	held, err := addScript.Run(ctx, r.client, []string{r.prefix + key}, val, ttl.Milliseconds()).Text()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []byte(held), nil
}

var addScript = redis.NewScript(`
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`)

// Swap implements Backend.
func (r *Redis) Swap(ctx context.Context, key string, old, val []byte, ttl time.Duration) (bool, error) {
	n, err := swapScript.Run(ctx, r.client, []string{r.prefix + key}, old, val, max(ttl.Milliseconds(), 1)).Int()
	return n == 1, err
}
