package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replica is a replica of the fleet as its heartbeats tell of it.
type Replica struct {
	ID       string    // RedisConfig.ID of its limiter
	AdminURL string    // its admin listener's URL; "" when it has none
	SeenAt   time.Time // its last heartbeat, by Redis's clock
}

// ListReplicas returns the replicas whose Redis limiter, configured with
// rc's address, database and key prefix, sent a heartbeat within the last
// 10s, sorted by ID. It makes its own connection and closes it; each
// command is bounded by rc.Timeout (default 100ms).
func ListReplicas(ctx context.Context, rc RedisConfig) ([]Replica, error) {
	rc, err := rc.withDefaults(nil)
	if err != nil {
		return nil, err
	}
	client := NewRedisClient(rc)
	defer client.Close()
	now, err := client.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("ratelimit: listing replicas: %w", err)
	}
	since := now.Add(-replicaTTL).UnixMilli()
	zs, err := client.ZRangeByScoreWithScores(ctx, rc.KeyPrefix+"replicas", &redis.ZRangeBy{Min: strconv.FormatInt(since, 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("ratelimit: listing replicas: %w", err)
	}
	if len(zs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i], _ = z.Member.(string)
	}
	urls, err := client.HMGet(ctx, rc.KeyPrefix+"replica-admin", ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("ratelimit: listing replicas: %w", err)
	}
	out := make([]Replica, len(zs))
	for i, z := range zs {
		u, _ := urls[i].(string)
		out[i] = Replica{ID: ids[i], AdminURL: u, SeenAt: time.UnixMilli(int64(z.Score))}
	}
	slices.SortFunc(out, func(a, b Replica) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
