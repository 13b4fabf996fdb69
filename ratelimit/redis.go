package ratelimit

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/rs/zerolog"
)

// The policies for RedisConfig.OnFailure.
const (
	// OnFailureLocal limits each replica on its own to its share of every
	// Rule while Redis is unavailable.
	OnFailureLocal = "local"
	// OnFailureAllow admits every request while Redis is unavailable
	// (pauses still apply).
	OnFailureAllow = "allow"
	// OnFailureDeny turns every request away while Redis is unavailable,
	// with a RetryAfter of a second.
	OnFailureDeny = "deny"
)

// Timings of the background work started by [Redis.Start].
const (
	heartbeatEvery  = 2 * time.Second        // ZADD of this replica
	replicaTTL      = 10 * time.Second       // a replica not heard from for this long is gone
	healthEvery     = 500 * time.Millisecond // PING while in fallback
	resubscribeWait = 500 * time.Millisecond // between attempts to subscribe
	subscriberIdle  = 5 * time.Second        // a silent subscription is PINGed after this
	stepTTL         = 5 * time.Minute        // the backoff step is forgotten after this without pauses
	logicLogEvery   = 10 * time.Second       // at most one log line per this for Redis logic errors
)

// catchAll names, in Redis keys and messages, the one lane an account has
// for every bucket without an entry in Config.Buckets.
const catchAll = "*"

// keySafe reports whether an account SID is made of a-z, 0-9, _ and -
// only, as it must be to be part of Redis keys and messages.
func keySafe(sid string) bool {
	for _, c := range sid {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return sid != ""
}

// RedisConfig says how a [Redis] limiter reaches Redis and what it does
// without it. A zero field takes the default given beside it; Addr is
// required.
type RedisConfig struct {
	Addr     string      // host:port of the Redis server
	Username string      // ACL user; "" for none. Already resolved by the caller.
	Password string      // "" for none. Already resolved by the caller.
	DB       int         // database number
	TLS      *tls.Config // nil: plain TCP

	// KeyPrefix starts every key and channel name the limiter uses.
	// Default "exogate:".
	KeyPrefix string

	// Timeout bounds each Redis call: dialling, writing, reading, and
	// waiting for a pooled connection; there are no retries. A slow Redis
	// never holds a caller up longer than this per call. Default 100ms.
	Timeout time.Duration

	// OnFailure says what Admit does while Redis is unavailable:
	// OnFailureLocal (the default), OnFailureAllow or OnFailureDeny.
	OnFailure string

	// Replicas is the number of replicas that share the limits, for the
	// local fallback's share. 0 means the count seen through the replicas'
	// heartbeats, at least 1.
	Replicas int

	// Logger receives the switches to and from the local fallback and the
	// Redis errors that are not outages. The zero Logger discards.
	Logger zerolog.Logger

	// ID names this replica in the heartbeats. Default: random.
	ID string

	// AdminURL is where tools reach this replica's admin listener
	// (http://host:port); the heartbeats publish it next to ID, for
	// [ListReplicas]. "" publishes none. See also [Redis.SetAdminURL].
	AdminURL string
}

// Redis is the limiter shared by a fleet of replicas: the buckets live in
// Redis, so each account×bucket has one budget however many replicas serve
// it. See the package documentation ("Sharing the limits through Redis")
// for how the rules map to redis_rate, how callers wait, how pauses travel,
// and what happens while Redis is unavailable.
//
// Create one with [NewRedis], call [Redis.Start] to run its background work,
// and [Redis.Close] when done. The zero Redis is not usable. Redis is safe
// for concurrent use.
type Redis struct {
	timebase
	maxWait   time.Duration
	cfg       Config // for the fallback's share
	sids      []string
	buckets   map[string]int // bucket name in Config.Buckets → index into lanes
	accounts  map[string]*redisAccount
	capLimit  redis_rate.Limit
	timeout   time.Duration
	onFailure string
	replicasN int // RedisConfig.Replicas
	log       zerolog.Logger
	id        string

	client    *redis.Client
	rate      *redis_rate.Limiter
	pauseLua  *redis.Script
	beatLua   *redis.Script
	prefix    string
	channel   string // the pauses channel
	replicaZ  string // the heartbeats' sorted set
	adminH    string // the replicas' admin URLs, a hash by replica id
	adminURL  atomic.Pointer[string]
	pauseScan string // SCAN pattern of the pause keys

	replicas atomic.Int64 // as seen by the last heartbeat, at least 1
	down     atomic.Bool  // Redis is unavailable: the OnFailure policy applies
	fallback atomic.Pointer[Memory]
	switchMu sync.Mutex   // serializes switches and the building of fallbacks
	lastLog  atomic.Int64 // when a logic error was last logged (ns since the epoch)

	malformed  atomic.Int64 // pause messages that could not be read
	lastBadLog atomic.Int64 // when one was last logged (ns since the epoch)

	bgMu    sync.Mutex // guards closed, started, cancel, ps and the adding to bg
	closed  bool
	bg      sync.WaitGroup
	started bool
	cancel  context.CancelFunc
	ps      *redis.PubSub // the subscription, closed by Close to end a blocked read
}

// redisAccount is one account's lanes and its cap's key.
type redisAccount struct {
	capKey string // "" when there is no cap
	lanes  []redisLane
}

// lane returns the lane for bucket: its own, or the shared last one.
func (a *redisAccount) lane(buckets map[string]int, bucket string) *redisLane {
	i, ok := buckets[bucket]
	if !ok {
		i = len(a.lanes) - 1
	}
	return &a.lanes[i]
}

// redisLane is one account×bucket: its key and limit in Redis, its pause,
// and the line of callers of this replica.
type redisLane struct {
	name     string           // the bucket's name in keys and messages
	key      string           // redis_rate key; "" when the bucket has no rule
	limit    redis_rate.Limit // the bucket's limit
	interval float64          // nanoseconds between tokens, for predictions
	burst    float64
	pauseKey string
	stepKey  string

	pauseEnd atomic.Int64 // ns since the epoch; longAgo when none
	step     atomic.Int32 // the backoff step, as last known
	backoff  atomic.Bool  // Redis may hold a backoff step Succeeded must delete

	mu      sync.Mutex
	busy    bool           // a head is at work
	waiters []*redisWaiter // the line behind the head, in order
	nextTry int64          // when a sleeping head tries again; 0 while it talks to Redis
	tokens  float64        // tokens the head saw left at lastAt, for predictions
	lastAt  int64
}

// redisWaiter is one caller in a lane's line.
type redisWaiter struct {
	ready chan struct{} // signalled when it becomes the head
	head  bool          // guarded by the lane's mu
}

// NewRedis returns a Redis limiter for the given accounts (lower-case SIDs
// of [a-z0-9_-]) and limits, as [NewMemory] takes them, reaching Redis as rc
// says. It reports what NewMemory reports, a missing Addr, and an unknown
// OnFailure; it does not connect (see [Redis.Start]).
func NewRedis(accounts []string, cfg Config, rc RedisConfig) (*Redis, error) {
	names, err := checkConfig(accounts, cfg)
	if err != nil {
		return nil, err
	}
	rc, err = rc.withDefaults(accounts)
	if err != nil {
		return nil, err
	}
	client := NewRedisClient(rc)
	r := &Redis{
		timebase:  newTimebase(cfg.Now),
		maxWait:   cfg.MaxWait,
		cfg:       cfg,
		sids:      accounts,
		buckets:   make(map[string]int, len(names)),
		accounts:  make(map[string]*redisAccount, len(accounts)),
		capLimit:  redisLimit(cfg.Account),
		timeout:   rc.Timeout,
		onFailure: rc.OnFailure,
		replicasN: rc.Replicas,
		log:       rc.Logger,
		id:        rc.ID,
		client:    client,
		rate:      redis_rate.NewLimiter(rateScripter{client}),
		pauseLua:  redis.NewScript(pauseScript),
		beatLua:   redis.NewScript(heartbeatScript),
		prefix:    rc.KeyPrefix,
		channel:   rc.KeyPrefix + "pauses",
		replicaZ:  rc.KeyPrefix + "replicas",
		adminH:    rc.KeyPrefix + "replica-admin",
		pauseScan: rc.KeyPrefix + "pause:*",
	}
	r.replicas.Store(1)
	r.SetAdminURL(rc.AdminURL)
	for i, name := range names {
		r.buckets[name] = i
	}
	for _, sid := range accounts {
		r.accounts[sid] = r.newAccount(sid, names)
	}
	return r, nil
}

// RedisConfig's defaults for its zero fields (OnFailure's is OnFailureLocal).
const (
	DefaultKeyPrefix    = "exogate:"
	DefaultRedisTimeout = 100 * time.Millisecond
)

// withDefaults checks rc, and the accounts' SIDs as parts of Redis keys,
// and fills in the documented defaults of its zero fields.
func (rc RedisConfig) withDefaults(accounts []string) (RedisConfig, error) {
	for _, sid := range accounts {
		if !keySafe(sid) {
			return rc, fmt.Errorf("ratelimit: account SID %q has characters other than a-z, 0-9, _ and -", sid)
		}
	}
	switch {
	case rc.Addr == "":
		return rc, errors.New("ratelimit: redis: addr is required")
	case rc.OnFailure != "" && rc.OnFailure != OnFailureLocal && rc.OnFailure != OnFailureAllow && rc.OnFailure != OnFailureDeny:
		return rc, fmt.Errorf("ratelimit: redis: on_failure %q must be local, allow or deny", rc.OnFailure)
	case rc.Timeout < 0:
		return rc, fmt.Errorf("ratelimit: redis: timeout %v must not be negative", rc.Timeout)
	case rc.Replicas < 0:
		return rc, fmt.Errorf("ratelimit: redis: replicas %d must not be negative", rc.Replicas)
	}
	if rc.KeyPrefix == "" {
		rc.KeyPrefix = DefaultKeyPrefix
	}
	if rc.Timeout == 0 {
		rc.Timeout = DefaultRedisTimeout
	}
	if rc.OnFailure == "" {
		rc.OnFailure = OnFailureLocal
	}
	if rc.ID == "" {
		rc.ID = rand.Text()
	}
	return rc, nil
}

// NewRedisClient is the one place a go-redis client is built: the
// limiter's, and those of other parts that keep state in the same Redis
// (the webhook claims). Every wait is bounded by rc.Timeout (default
// 100ms), with no retries of its own (a failed command falls back at once).
func NewRedisClient(rc RedisConfig) *redis.Client {
	if rc.Timeout == 0 {
		rc.Timeout = DefaultRedisTimeout
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

// newAccount is an account's lanes, one per bucket and the catch-all, with
// their Redis keys and schedules.
func (r *Redis) newAccount(sid string, names []string) *redisAccount {
	cfg := r.cfg
	a := &redisAccount{lanes: make([]redisLane, len(names)+1)}
	if cfg.Account.Limit > 0 {
		a.capKey = r.prefix + "cap:" + sid
	}
	for i := range a.lanes {
		l := &a.lanes[i]
		l.name = catchAll
		if i < len(names) {
			l.name = names[i]
		}
		rule := cfg.Buckets[l.name]
		if rule.Limit > 0 {
			l.key = r.prefix + "rate:" + sid + ":" + l.name
			l.limit = redisLimit(rule)
		} else {
			rule = cfg.Account // a lane without a rule waits for the cap
		}
		if rule.Limit > 0 {
			l.interval = float64(rule.Period) / float64(rule.Limit-rule.burst())
			l.burst = float64(rule.burst())
		}
		l.pauseKey = r.prefix + "pause:" + sid + ":" + l.name
		l.stepKey = r.prefix + "pause-step:" + sid + ":" + l.name
		l.pauseEnd.Store(longAgo)
	}
	return a
}

// redisLimit returns the redis_rate limit that enforces r (zero when r is
// off): Rate = Limit − Burst tokens per Period, Burst tokens at most. See
// the package documentation for why that keeps every window of Period to
// Limit.
func redisLimit(r Rule) redis_rate.Limit {
	if r.Limit == 0 {
		return redis_rate.Limit{}
	}
	return redis_rate.Limit{Rate: r.Limit - r.burst(), Burst: r.burst(), Period: r.Period}
}

// rateScripter hands redis_rate's scripts to the client with the "rate:"
// that redis_rate puts before every key taken off again, so that every key
// the limiter writes starts with RedisConfig.KeyPrefix (and a Redis ACL can
// confine exogate to it).
type rateScripter struct{ *redis.Client }

// rateKeys returns keys with redis_rate's prefix taken off, in a new slice:
// go-redis may send the same keys twice (EVALSHA, then EVAL).
func rateKeys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, "rate:")
	}
	return out
}

func (s rateScripter) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return s.Client.Eval(ctx, script, rateKeys(keys), args...)
}

func (s rateScripter) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return s.Client.EvalSha(ctx, sha1, rateKeys(keys), args...)
}

func (s rateScripter) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return s.Client.EvalRO(ctx, script, rateKeys(keys), args...)
}

func (s rateScripter) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return s.Client.EvalShaRO(ctx, sha1, rateKeys(keys), args...)
}

func (s rateScripter) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return s.Client.Del(ctx, rateKeys(keys)...)
}

// Admit waits in line for a token of the account's bucket (and of the
// account cap, if any), shared with every replica through Redis, at most
// Config.MaxWait and never until ctx's deadline, and returns how long the
// caller waited. Its contract is [Memory.Admit]'s, with these differences:
//
//   - A caller is turned away at once when the wait predicted from what this
//     replica knows (the head of its line's RetryAfter, plus an interval per
//     caller ahead, or the end of a pause) is too long. Other replicas take
//     tokens too, so a caller may still find, once at the head of the line,
//     that its wait is too long; it is then turned away, with waited set to
//     the time it spent in line.
//   - waited does not count the Redis round trip of a caller admitted at its
//     first try without queueing: it is then 0.
//   - A context that reaches its deadline during a Redis call gives a
//     [*LimitedError], not context.DeadlineExceeded.
//   - While Redis is unavailable the RedisConfig.OnFailure policy answers.
//
// Admit returns no other errors than [*LimitedError], the context's
// cancellation, and [ErrUnknownAccount].
func (r *Redis) Admit(ctx context.Context, account, bucket string) (waited time.Duration, err error) {
	acct := r.accounts[account]
	if acct == nil {
		return 0, ErrUnknownAccount
	}
	l := acct.lane(r.buckets, bucket)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if l.key == "" && acct.capKey == "" {
		// Nothing to ask Redis, with or without it: only a pause holds.
		if l.pauseEnd.Load() == longAgo {
			return 0, nil
		}
		return r.waitPause(ctx, &l.pauseEnd, r.maxWait)
	}
	start := r.now()
	if r.down.Load() {
		return r.admitByPolicy(ctx, account, bucket, l, start, 0)
	}

	l.mu.Lock()
	if !l.busy {
		l.busy = true
		l.mu.Unlock()
		return r.lead(ctx, account, bucket, acct, l, start, false)
	}
	pos := len(l.waiters)
	if wait := l.predict(r.ns(start), pos); r.tooLong(ctx, start, start, wait) {
		l.mu.Unlock()
		return 0, &LimitedError{Delay: max(wait, time.Millisecond)}
	}
	w := &redisWaiter{ready: make(chan struct{}, 1)}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()

	// The time in line is bounded by MaxWait, plus a Redis call's Timeout
	// for the round trips of those ahead.
	limit := time.NewTimer(r.maxWait + r.timeout)
	defer limit.Stop()
	select {
	case <-w.ready:
	case <-limit.C:
		l.mu.Lock()
		if !w.head {
			i := l.drop(w)
			wait := l.predict(r.ns(r.now()), i)
			l.mu.Unlock()
			return r.since(start), &LimitedError{Delay: max(wait, time.Millisecond)}
		}
		l.mu.Unlock()
	case <-ctx.Done():
		l.mu.Lock()
		head := w.head
		if !head {
			l.drop(w)
		}
		l.mu.Unlock()
		if head {
			l.release()
		}
		return r.since(start), r.ctxErr(ctx, l)
	}
	return r.lead(ctx, account, bucket, acct, l, start, true)
}

// lead is the work of the head of l's line: wait out a pause, ask Redis,
// sleep for its RetryAfter, until admitted or out of time. It hands the line
// on when it returns. queued says whether the caller has waited already.
func (r *Redis) lead(ctx context.Context, account, bucket string, acct *redisAccount, l *redisLane, start time.Time, queued bool) (time.Duration, error) {
	w := &leaderWait{r: r, l: l, start: start, queued: queued}
	defer w.stop()
	for {
		now := r.now()
		if left := time.Duration(l.pauseEnd.Load() - r.ns(now)); left > 0 {
			if r.tooLong(ctx, start, now, left) {
				l.release()
				return w.waited(), &LimitedError{Delay: max(left, time.Millisecond)}
			}
			l.sleeping(r.ns(now) + int64(left))
			if err := w.sleep(ctx, left); err != nil {
				l.release()
				return w.waited(), err
			}
			continue
		}
		if r.down.Load() {
			l.release()
			return r.admitByPolicy(ctx, account, bucket, l, start, w.waited())
		}
		l.sleeping(0)
		ok, retry, tokens, err := r.allow(ctx, acct, l)
		if err != nil {
			return r.leadFailed(ctx, account, bucket, w, err)
		}
		now = r.now()
		if ok {
			l.admitted(r.ns(now), tokens)
			l.release()
			return w.waited(), nil
		}
		if r.tooLong(ctx, start, now, retry) {
			l.release()
			return w.waited(), &LimitedError{Delay: max(retry, time.Millisecond)}
		}
		// With Burst 1 the moment between the token coming and the next
		// call reaching Redis is lost for good, and a timer may fire a
		// millisecond late. Waking early and measuring out the rest with
		// PINGs saved about 0.3 % of a rule at Exotel's 200/min: too little
		// to keep (docs/benchmarks.md).
		l.sleeping(r.ns(now) + int64(retry))
		if err := w.sleep(ctx, retry); err != nil {
			l.release()
			return w.waited(), err
		}
	}
}

// leadFailed answers the head of w's line after err from Redis: the
// caller's own end, or the on_failure policy (marking Redis down when it
// could not be reached).
func (r *Redis) leadFailed(ctx context.Context, account, bucket string, w *leaderWait, err error) (time.Duration, error) {
	w.l.release()
	if ctx.Err() != nil {
		return w.waited(), r.ctxErr(ctx, w.l)
	}
	if unavailable(err) {
		r.markDown(err)
	} else {
		r.logicError(err)
	}
	return r.admitByPolicy(ctx, account, bucket, w.l, w.start, w.waited())
}

// leaderWait is the time the head of a lane's line has spent in it, and the
// one timer it sleeps on.
type leaderWait struct {
	r      *Redis
	l      *redisLane
	start  time.Time
	queued bool // the caller has waited (in line or asleep)
	timer  *time.Timer
}

// waited is the time spent in line, 0 when the caller never waited.
func (w *leaderWait) waited() time.Duration {
	if w.queued {
		return w.r.since(w.start)
	}
	return 0
}

// sleep waits d, or until ctx is done.
func (w *leaderWait) sleep(ctx context.Context, d time.Duration) error {
	w.queued = true
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	select {
	case <-w.timer.C:
		return nil
	case <-ctx.Done():
		return w.r.ctxErr(ctx, w.l)
	}
}

func (w *leaderWait) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
}

// allow asks Redis for a token of l's bucket, then of the account's cap. It
// returns whether both were had, else how long until the missing one comes;
// and when admitted, the fewest tokens either has left. A token of the
// bucket taken before the cap says no is lost: the bucket then lets through
// fewer requests than it could, never more.
func (r *Redis) allow(ctx context.Context, acct *redisAccount, l *redisLane) (ok bool, retry time.Duration, tokens int, err error) {
	tokens = math.MaxInt
	if l.key != "" {
		res, err := r.rate.Allow(ctx, l.key, l.limit)
		if err != nil {
			return false, 0, 0, fmt.Errorf("bucket %s: %w", l.key, err)
		}
		if res.Allowed == 0 {
			return false, res.RetryAfter, 0, nil
		}
		tokens = res.Remaining
	}
	if acct.capKey != "" {
		res, err := r.rate.Allow(ctx, acct.capKey, r.capLimit)
		if err != nil {
			return false, 0, 0, fmt.Errorf("account cap %s: %w", acct.capKey, err)
		}
		if res.Allowed == 0 {
			return false, res.RetryAfter, 0, nil
		}
		tokens = min(tokens, res.Remaining)
	}
	return true, 0, tokens, nil
}

// tooLong reports whether a caller that came at start and would, at now,
// wait wait more, would wait longer than MaxWait or reach ctx's deadline.
func (r *Redis) tooLong(ctx context.Context, start, now time.Time, wait time.Duration) bool {
	if wait <= 0 {
		return false
	}
	return now.Sub(start)+wait > r.maxWait || r.pastDeadline(ctx, r.ns(now)+int64(wait))
}

// since returns the time since start, not negative.
func (r *Redis) since(start time.Time) time.Duration { return max(r.now().Sub(start), 0) }

// ctxErr returns the error for ctx being done: its cancellation, or a
// rejection when its deadline came during a Redis call (the proxy answers a
// rejection with 429, where context.DeadlineExceeded would be a 504).
func (r *Redis) ctxErr(ctx context.Context, l *redisLane) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return &LimitedError{Delay: max(time.Duration(l.interval), time.Millisecond)}
	}
	return err
}

// predict returns how long the caller at position pos behind the head of
// l's line is likely to wait: the head's RetryAfter, or the tokens the head
// last saw, plus an interval per caller ahead; and at least until the end
// of a pause. l.mu must be held.
func (l *redisLane) predict(now int64, pos int) time.Duration {
	var at float64
	ahead := float64(pos + 1)
	switch {
	case l.nextTry > 0:
		// The head sleeps until a token comes at nextTry.
		at = float64(l.nextTry) + ahead*l.interval
	case l.interval > 0:
		// The head talks to Redis: count the tokens it saw grow back since.
		tokens := min(l.tokens+float64(now-l.lastAt)/l.interval, l.burst) - 1
		at = float64(now) + max(ahead-tokens, 0)*l.interval
	default:
		at = float64(now)
	}
	at = max(at, float64(l.pauseEnd.Load()))
	return time.Duration(max(at-float64(now), 0))
}

// sleeping records that the head sleeps until at (0: it talks to Redis).
func (l *redisLane) sleeping(at int64) {
	l.mu.Lock()
	l.nextTry = at
	l.mu.Unlock()
}

// admitted records the tokens left after an admission at now.
func (l *redisLane) admitted(now int64, tokens int) {
	l.mu.Lock()
	l.tokens, l.lastAt = float64(min(tokens, int(l.burst))), now
	l.mu.Unlock()
}

// release hands the line to the next caller in it, or frees it.
func (l *redisLane) release() {
	l.mu.Lock()
	l.nextTry = 0
	if len(l.waiters) == 0 {
		l.busy = false
		l.mu.Unlock()
		return
	}
	w := l.waiters[0]
	l.waiters[0] = nil
	l.waiters = l.waiters[1:]
	w.head = true
	l.mu.Unlock()
	w.ready <- struct{}{}
}

// drop takes w out of the line and returns where it was. l.mu must be held.
func (l *redisLane) drop(w *redisWaiter) int {
	for i, x := range l.waiters {
		if x == w {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			return i
		}
	}
	return len(l.waiters)
}

// admitByPolicy answers a caller without Redis, as RedisConfig.OnFailure
// says: after an outage, or after an error Redis answered. waited is the
// time the caller has waited already.
func (r *Redis) admitByPolicy(ctx context.Context, account, bucket string, l *redisLane, start time.Time, waited time.Duration) (time.Duration, error) {
	switch r.onFailure {
	case OnFailureAllow:
		w, err := r.waitPause(ctx, &l.pauseEnd, max(r.maxWait-r.since(start), 0))
		return waited + w, err
	case OnFailureDeny:
		left := time.Duration(l.pauseEnd.Load() - r.ns(r.now()))
		return waited, &LimitedError{Delay: max(left, time.Second)}
	}
	fb := r.localLimiter()
	if fb == nil {
		return waited, &LimitedError{Delay: time.Second}
	}
	if waited > 0 {
		// What the fallback may wait is what is left of MaxWait.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, start.Add(r.maxWait+1))
		defer cancel()
	}
	w, err := fb.Admit(ctx, account, bucket)
	if errors.Is(err, context.DeadlineExceeded) {
		err = &LimitedError{Delay: time.Second}
	}
	return waited + w, err
}

// localLimiter returns the fallback Memory, building one if there is none
// yet (after a logic error while Redis is up).
func (r *Redis) localLimiter() *Memory {
	if fb := r.fallback.Load(); fb != nil {
		return fb
	}
	r.switchMu.Lock()
	defer r.switchMu.Unlock()
	if fb := r.fallback.Load(); fb != nil {
		return fb
	}
	return r.newFallback()
}

// newFallback builds and installs a Memory that enforces this replica's
// share of every Rule, and copies the pauses in force into it. r.switchMu
// must be held.
func (r *Redis) newFallback() *Memory {
	n := r.shareCount()
	cfg := shareConfig(r.cfg, n)
	cfg.Now = r.now
	fb, err := NewMemory(r.sids, cfg)
	if err != nil {
		// shareRule makes valid rules; this would be a bug.
		r.log.Error().Err(err).Int("replicas", n).Msg("ratelimit: cannot build the local fallback limiter; turning requests away")
		return nil
	}
	r.fallback.Store(fb)
	now := r.ns(r.now())
	for _, sid := range r.sids {
		for i := range r.accounts[sid].lanes {
			l := &r.accounts[sid].lanes[i]
			if left := time.Duration(l.pauseEnd.Load() - now); left > 0 {
				fb.Pause(sid, l.name, left)
			}
		}
	}
	return fb
}

// shareCount returns the number of replicas the local share is for.
func (r *Redis) shareCount() int {
	if r.replicasN > 0 {
		return r.replicasN
	}
	return max(int(r.replicas.Load()), 1)
}

// markDown switches to the OnFailure policy after err showed Redis
// unavailable, and logs the switch once.
func (r *Redis) markDown(err error) {
	if r.down.Load() || r.isClosed() {
		return
	}
	r.switchMu.Lock()
	defer r.switchMu.Unlock()
	if r.down.Load() {
		return
	}
	n := r.shareCount()
	if r.onFailure == OnFailureLocal {
		r.newFallback()
	}
	r.down.Store(true)
	ev := r.log.Warn().Err(err).Str("on_failure", r.onFailure)
	if r.onFailure == OnFailureLocal {
		ev = ev.Int("replicas", n)
	}
	ev.Msg("ratelimit: Redis unavailable, limiting without it until it answers again")
}

// markUp switches back to Redis and logs the switch once.
func (r *Redis) markUp() {
	r.switchMu.Lock()
	defer r.switchMu.Unlock()
	if !r.down.Load() {
		return
	}
	r.down.Store(false)
	r.log.Info().Msg("ratelimit: Redis available again, limits are shared again")
}

// logicError logs an error Redis answered that is not an outage (a
// script error, a wrong type, an ACL refusal), at most once per
// logicLogEvery.
func (r *Redis) logicError(err error) {
	if !r.throttle(&r.lastLog) {
		return
	}
	r.log.Error().Err(err).Str("on_failure", r.onFailure).Msg("ratelimit: Redis answered with an error; this request is limited without it")
}

// throttle reports whether a line whose last one was logged at *last (ns
// since the epoch; 0 for never) may be logged now, at most one per
// logicLogEvery, and if so records now.
func (r *Redis) throttle(last *atomic.Int64) bool {
	now := max(r.ns(r.now()), 1) // 0 means never
	l := last.Load()
	return (l == 0 || now-l >= int64(logicLogEvery)) && last.CompareAndSwap(l, now)
}

// unavailable reports whether err means Redis cannot be reached or cannot
// serve now (as opposed to an error in what was asked of it).
func unavailable(err error) bool {
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	var ne *strconv.NumError
	return !errors.As(err, &ne)
}

// Backend returns "redis" while the limits are shared through Redis, and
// "local" while Redis is unavailable and RedisConfig.OnFailure answers.
func (r *Redis) Backend() string {
	if r.down.Load() {
		return "local"
	}
	return "redis"
}

// Replicas returns the number of replicas seen through the last heartbeat,
// at least 1 (1 before the first).
func (r *Redis) Replicas() int { return int(r.replicas.Load()) }
