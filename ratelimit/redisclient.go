package ratelimit

import (
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// NewRedisClient is the one place a Redis client is built: the limiter's,
// and those of other parts that keep state in the same Redis (the webhook
// claims), with rc's address, credentials, TLS and per-call Timeout, and
// no retries.
func NewRedisClient(rc RedisConfig) *redis.Client {
	if rc.Timeout == 0 {
		rc.Timeout = 100 * time.Millisecond // RedisConfig.Timeout's default
	}
	return redis.NewClient(&redis.Options{
		Addr:                  rc.Addr,
		Username:              rc.Username,
		Password:              rc.Password,
		DB:                    rc.DB,
		TLSConfig:             rc.TLS,
		DialTimeout:           rc.Timeout,
		DialerRetries:         1,
		ReadTimeout:           rc.Timeout,
		WriteTimeout:          rc.Timeout,
		PoolTimeout:           rc.Timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
}
