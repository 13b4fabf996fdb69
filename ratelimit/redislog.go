package ratelimit

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// RouteRedisLogs sends go-redis's own messages (such as "failed to dial"
// while Redis is down, a few a second) to l at debug level instead of
// stderr. go-redis keeps its logger process-wide, so this is for the
// program's main to call once; the limiter itself logs the switches to and
// from its fallback.
func RouteRedisLogs(l zerolog.Logger) {
	redis.SetLogger(redisLog{l})
}

type redisLog struct{ l zerolog.Logger }

func (r redisLog) Printf(_ context.Context, format string, v ...any) {
	r.l.Debug().Str("component", "go-redis").Msg(fmt.Sprintf(format, v...))
}
