package ratelimit

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// pauseScript starts a pause of an account×bucket for the fleet, in one
// round trip. It counts the pause in the backoff step (KEYS[2], forgotten
// after ARGV[5] ms without pauses) and, when ARGV[1] is 0 ms (no
// Retry-After), makes the pause the step's backoff: base·2^(step−1) ms up to
// max, jittered to between half and all of it by ARGV[2] in [0, 1). Unless a
// longer pause is already in force, it sets KEYS[1] to the pause's end
// (unix ms, Redis's clock) expiring with it, and publishes
// "<account> <bucket> <ms>" on ARGV[6]. It returns {the pause in force in ms,
// the step}.
const pauseScript = `
local step = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local d = tonumber(ARGV[1])
if d <= 0 then
  local b = tonumber(ARGV[4])
  if step < 32 then
    b = math.min(tonumber(ARGV[3]) * 2 ^ (step - 1), b)
  end
  local half = math.floor(b / 2)
  d = half + math.floor(tonumber(ARGV[2]) * (b - half))
  if d < 1 then d = 1 end
end
local left = redis.call('PTTL', KEYS[1])
if left >= d then
  return {left, step}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], string.format('%d', now + d), 'PX', d)
redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. ARGV[8] .. ' ' .. d)
return {d, step}
`

// heartbeatScript records replica ARGV[1] as alive now (Redis's clock, in
// ms) in the sorted set KEYS[1], and its admin URL ARGV[3] (none when
// empty) in the hash KEYS[2]; forgets the replicas not heard from for
// ARGV[2] ms, in both, and returns how many are left.
const heartbeatScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
for _, id in ipairs(gone) do
  redis.call('HDEL', KEYS[2], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('HDEL', KEYS[2], ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])
`

// Pause stops admitting requests for account×bucket in every replica until
// now+d: Exotel answered 429. d <= 0 means Exotel gave no Retry-After: the
// pause is then an exponential backoff with jitter, 1s doubling with each
// consecutive pause of that account×bucket in the fleet (counted in Redis
// until a success resets it, see [Redis.Succeeded]) up to 60s, and jittered
// to between half and all of that. A pause never shortens a longer one, in
// this replica or in Redis. Pause returns the pause in force: d, the backoff
// chosen, or what is left of a longer one.
//
// It takes one Redis round trip (at most RedisConfig.Timeout). The other
// replicas learn of the pause through Redis pub/sub, or when they subscribe
// again. Without Redis the pause and its backoff step are this replica's
// only. Buckets without an entry in Config.Buckets share one pause per
// account. An unknown account is ignored (Pause returns 0). Pause is safe
// for concurrent use.
func (r *Redis) Pause(account, bucket string, d time.Duration) time.Duration {
	acct := r.accounts[account]
	if acct == nil {
		return 0
	}
	l := acct.lane(r.buckets, bucket)
	if !r.down.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		inForce, step, err := r.pauseShared(ctx, account, l, d)
		cancel()
		if err == nil {
			l.step.Store(int32(step))
			l.backoff.Store(true)
			return r.pauseLocal(account, l, inForce)
		}
		if unavailable(err) {
			r.markDown(err)
		} else {
			r.logicError(err)
		}
	}
	step := l.step.Add(1)
	if d <= 0 {
		d = backoff(int(step))
	}
	return r.pauseLocal(account, l, d)
}

// pauseShared runs pauseScript for l.
func (r *Redis) pauseShared(ctx context.Context, account string, l *redisLane, d time.Duration) (inForce time.Duration, step int64, err error) {
	ms := int64(0)
	if d > 0 {
		ms = int64((d + time.Millisecond - 1) / time.Millisecond)
	}
	v, err := r.pauseLua.Run(ctx, r.client, []string{l.pauseKey, l.stepKey},
		ms, rand.Float64(), backoffBase.Milliseconds(), backoffMax.Milliseconds(), stepTTL.Milliseconds(),
		r.channel, account, l.name).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(v) != 2 {
		return 0, 0, errors.New("ratelimit: pause script: unexpected reply")
	}
	return time.Duration(v[0]) * time.Millisecond, v[1], nil
}

// pauseLocal makes l paused for at least d from now, in this replica and in
// its fallback limiter, and returns the pause in force. d is cut to
// MaxPause: it may come from Redis (a pause key's time to live, or one
// already in force when Pause ran), which anyone who can write there sets.
func (r *Redis) pauseLocal(account string, l *redisLane, d time.Duration) time.Duration {
	d = min(d, MaxPause)
	now := r.ns(r.now())
	end := now + int64(d)
	for {
		old := l.pauseEnd.Load()
		if old >= end {
			// A longer pause is already in force. Within a few
			// milliseconds it is this same pause, set first by its own
			// pub/sub message racing this call: report d as asked.
			if old-end > int64(50*time.Millisecond) {
				d = time.Duration(old - now)
			}
			break
		}
		if l.pauseEnd.CompareAndSwap(old, end) {
			break
		}
	}
	if fb := r.fallback.Load(); fb != nil {
		fb.Pause(account, l.name, d)
	}
	return d
}

// Succeeded tells the limiter that Exotel accepted a request for
// account×bucket: the backoff step of the next pause without a Retry-After
// starts again at 1s, for the fleet. Successes while a pause is in force are
// ignored: they answer requests sent before it. Succeeded touches Redis
// (one DEL, in the background) only when this replica knows of a backoff in
// force, from its own pauses or the fleet's pause messages; otherwise it is
// an atomic load and does not allocate. It is safe for concurrent use.
func (r *Redis) Succeeded(account, bucket string) {
	acct := r.accounts[account]
	if acct == nil {
		return
	}
	l := acct.lane(r.buckets, bucket)
	if !l.backoff.Load() && l.step.Load() == 0 {
		return
	}
	if l.pauseEnd.Load() > r.ns(r.now()) {
		return
	}
	l.step.Store(0)
	if !l.backoff.CompareAndSwap(true, false) || r.down.Load() {
		return
	}
	r.goBackground(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, r.timeout)
		defer cancel()
		if err := r.client.Del(ctx, l.stepKey).Err(); err != nil {
			// The step is forgotten after stepTTL anyway.
			l.backoff.Store(true)
		}
	})
}

// PauseLeft returns how long account×bucket stays paused, as this replica
// knows: 0 if it is not, or if the account is unknown. It is safe for
// concurrent use.
func (r *Redis) PauseLeft(account, bucket string) time.Duration {
	acct := r.accounts[account]
	if acct == nil {
		return 0
	}
	end := acct.lane(r.buckets, bucket).pauseEnd.Load()
	return time.Duration(max(end-r.ns(r.now()), 0))
}

// Start runs the limiter's background work until ctx is done or Close is
// called: a heartbeat every 2s (the replica count for the fallback share),
// the subscription to the fleet's pauses (reading the pauses already in
// force whenever it subscribes), and, while Redis is unavailable, a PING
// every 500ms to switch back. Before it returns it has sent the first
// heartbeat and read the pauses in force, or found Redis unavailable; each
// takes at most a few Timeouts. Without Start, Admit and Pause work, but a
// switch to the fallback is for good. Calls after the first do nothing.
func (r *Redis) Start(ctx context.Context) {
	r.bgMu.Lock()
	if r.started || r.closed {
		r.bgMu.Unlock()
		return
	}
	r.started = true
	ctx, r.cancel = context.WithCancel(ctx)
	r.bgMu.Unlock()

	r.heartbeat(ctx)
	subscribed := make(chan struct{})
	r.goBackground(func(context.Context) { r.subscribe(ctx, subscribed) })
	r.goBackground(func(context.Context) { r.maintain(ctx) })
	wait := time.NewTimer(max(time.Second, 10*r.timeout))
	defer wait.Stop()
	select {
	case <-subscribed:
	case <-wait.C:
	case <-ctx.Done():
	}
}

// SetAdminURL sets the URL of this replica's admin listener that the
// heartbeats publish (see [ListReplicas]), in place of RedisConfig.AdminURL;
// "" publishes none. It takes effect from the next heartbeat: called before
// Start, from the first. It is safe for concurrent use.
func (r *Redis) SetAdminURL(u string) { r.adminURL.Store(&u) }

// Close stops the background work, takes this replica (and its admin URL)
// out of the heartbeats, and closes the connections to Redis. Admit called after Close
// answers as RedisConfig.OnFailure says. Close is safe to call more than
// once; calls after the first return nil.
func (r *Redis) Close() error {
	r.bgMu.Lock()
	if r.closed {
		r.bgMu.Unlock()
		return nil
	}
	r.closed = true
	started := r.started
	if r.cancel != nil {
		r.cancel()
	}
	if r.ps != nil {
		_ = r.ps.Close()
	}
	r.bgMu.Unlock()
	r.bg.Wait()
	if started && !r.down.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		pipe := r.client.TxPipeline()
		pipe.ZRem(ctx, r.replicaZ, r.id)
		pipe.HDel(ctx, r.adminH, r.id)
		_, _ = pipe.Exec(ctx)
		cancel()
	}
	return r.client.Close()
}

// isClosed reports whether Close was called.
func (r *Redis) isClosed() bool {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	return r.closed
}

// goBackground runs f in a goroutine that Close waits for, unless Close has
// been called.
func (r *Redis) goBackground(f func(context.Context)) {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	if r.closed {
		return
	}
	r.bg.Go(func() { f(context.Background()) })
}

// maintain sends the heartbeats and, while Redis is unavailable, checks
// whether it is back.
func (r *Redis) maintain(ctx context.Context) {
	beat := time.NewTicker(heartbeatEvery)
	defer beat.Stop()
	health := time.NewTicker(healthEvery)
	defer health.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			if !r.down.Load() {
				r.heartbeat(ctx)
			}
		case <-health.C:
			if !r.down.Load() {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, r.timeout)
			err := r.client.Ping(pctx).Err()
			cancel()
			if err == nil {
				r.markUp()
				r.heartbeat(ctx)
			}
		}
	}
}

// heartbeat records this replica in the heartbeats and reads the replica
// count.
func (r *Redis) heartbeat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := r.beatLua.Run(ctx, r.client, []string{r.replicaZ, r.adminH}, r.id, replicaTTL.Milliseconds(), *r.adminURL.Load()).Int64()
	switch {
	case err == nil:
		r.replicas.Store(max(n, 1))
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		// Stopping.
	case unavailable(err):
		r.markDown(err)
	default:
		r.logicError(err)
	}
}

// subscribe follows the fleet's pause messages until ctx is done, reading
// the pauses in force whenever it (re)subscribes. It closes subscribed after
// its first attempt.
func (r *Redis) subscribe(ctx context.Context, subscribed chan struct{}) {
	sub := &subscriber{r: r, subscribed: subscribed, retry: time.NewTimer(0)}
	<-sub.retry.C
	defer sub.close()
	for ctx.Err() == nil {
		if r.down.Load() {
			// The health check finds out when Redis is back; until then
			// trying to subscribe would only fail.
			sub.first()
			if !sub.wait(ctx) {
				return
			}
			continue
		}
		if sub.ps == nil {
			if sub.ps = r.newPubSub(ctx); sub.ps == nil {
				return
			}
			sub.pinged = false
		}
		msg, err := sub.ps.ReceiveTimeout(ctx, subscriberIdle)
		if err != nil {
			if ctx.Err() != nil || !sub.receiveFailed(ctx, err) {
				return
			}
			continue
		}
		sub.pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				r.reloadPauses(ctx)
				sub.first()
			}
		case *redis.Message:
			r.pauseMessage(m.Payload)
		}
	}
}

// newPubSub subscribes to the pause channel, unless Close has been called
// (nil).
func (r *Redis) newPubSub(ctx context.Context) *redis.PubSub {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	if r.closed {
		return nil
	}
	r.ps = r.client.Subscribe(ctx, r.channel)
	return r.ps
}

// subscriber is the state of subscribe's loop: the subscription, whether
// it was pinged after an idle spell, and the timer between attempts.
type subscriber struct {
	r          *Redis
	subscribed chan struct{} // closed after the first attempt
	ps         *redis.PubSub
	pinged     bool
	retry      *time.Timer
}

// first closes subscribed, once.
func (s *subscriber) first() {
	if s.subscribed != nil {
		close(s.subscribed)
		s.subscribed = nil
	}
}

// wait sleeps before the next attempt; false when ctx ended first.
func (s *subscriber) wait(ctx context.Context) bool {
	s.retry.Reset(resubscribeWait)
	select {
	case <-s.retry.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// receiveFailed handles an error from receiving: an idle spell is answered
// with a PING, and a second one without an answer starts over (the
// connection died without saying so); any other error waits before the
// next attempt. It reports false when ctx ended.
func (s *subscriber) receiveFailed(ctx context.Context, err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if s.pinged {
			_ = s.ps.Close()
			s.ps = nil
			return true
		}
		_ = s.ps.Ping(ctx)
		s.pinged = true
		return true
	}
	s.first()
	// go-redis dials again on the next receive.
	return s.wait(ctx)
}

func (s *subscriber) close() {
	s.retry.Stop()
	if s.ps != nil {
		_ = s.ps.Close()
	}
	s.first()
}

// pauseMessage applies a pause published on the fleet's channel:
// "<account> <bucket> <ms>". Anyone who can write to Redis can publish
// there, so a pause is cut to MaxPause (as Exotel's own Retry-After is), and
// a message that does not read so is ignored and counted (see
// [Redis.MalformedMessages]). A well-formed message for an account this
// replica does not serve is ignored.
func (r *Redis) pauseMessage(payload string) {
	account, rest, ok := strings.Cut(payload, " ")
	i := strings.LastIndexByte(rest, ' ')
	// Bucket names are key-safe like SIDs, or the catch-all lane's: a name
	// no replica would send ("no such bucket") must not fall through to
	// the catch-all lane.
	if bucket := rest[:max(i, 0)]; !ok || i <= 0 || !keySafe(account) || (!keySafe(bucket) && bucket != catchAll) {
		r.malformedMessage(payload)
		return
	}
	ms, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil || ms <= 0 {
		r.malformedMessage(payload)
		return
	}
	// Capped before it becomes a Duration, which a large count of
	// milliseconds would overflow.
	r.pauseFromRedis(account, rest[:i], time.Duration(min(ms, MaxPause.Milliseconds()))*time.Millisecond)
}

// malformedMessage counts a message of the pause channel that could not be
// read, and logs it at most once per logicLogEvery, with its length only:
// its content is whatever was published.
func (r *Redis) malformedMessage(payload string) {
	r.malformed.Add(1)
	if r.throttle(&r.lastBadLog) {
		r.log.Warn().Str("channel", r.channel).Int("length", len(payload)).
			Msg("ratelimit: ignored a malformed message on the Redis pause channel; is something other than exogate publishing there?")
	}
}

// MalformedMessages returns how many messages of the fleet's pause channel
// could not be read and were ignored since the limiter was made. It is safe
// for concurrent use.
func (r *Redis) MalformedMessages() int64 { return r.malformed.Load() }

// pauseFromRedis applies a pause of d the fleet knows of (from a message or
// a pause key's time to live), cut to MaxPause by pauseLocal.
func (r *Redis) pauseFromRedis(account, bucket string, d time.Duration) {
	acct := r.accounts[account]
	if acct == nil {
		return
	}
	l := acct.lane(r.buckets, bucket)
	l.backoff.Store(true)
	r.pauseLocal(account, l, d)
}

// reloadPauses reads the pause keys in force for this replica's accounts.
// It uses their time to live, not their value, so that the replicas' clocks
// need not agree.
func (r *Redis) reloadPauses(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(time.Second, 10*r.timeout))
	defer cancel()
	var keys []string
	iter := r.client.Scan(ctx, 0, r.pauseScan, 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		r.reloadFailed(ctx, err)
		return
	}
	if len(keys) == 0 {
		return
	}
	pipe := r.client.Pipeline()
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		ttls[i] = pipe.PTTL(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		r.reloadFailed(ctx, err)
		return
	}
	pre := r.prefix + "pause:"
	for i, k := range keys {
		account, bucket, ok := strings.Cut(strings.TrimPrefix(k, pre), ":")
		if d := ttls[i].Val(); ok && d > 0 {
			r.pauseFromRedis(account, bucket, d)
		}
	}
}

// reloadFailed handles an error while reading the pauses in force.
func (r *Redis) reloadFailed(ctx context.Context, err error) {
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return
	}
	if unavailable(err) {
		r.markDown(err)
		return
	}
	r.logicError(err)
}
