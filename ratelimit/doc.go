// Package ratelimit keeps the requests exogate sends to Exotel within
// Exotel's per-account limits (200 requests a minute for each API family, or
// "bucket"), so that Exotel never has to answer 429. It knows nothing about
// HTTP: the proxy asks [Memory.Admit] (or [Redis.Admit]) before it forwards a
// request and maps a rejection to a 429 with a Retry-After header; when
// Exotel answers 429 all the same, the proxy reports it with Pause.
//
// # Rules and the refill rate
//
// A [Rule] says: at most Limit requests in any window of length Period, with
// up to Burst of them back to back. It is enforced with a token bucket that
// holds at most b = Burst tokens, starts full, and gains r tokens per unit of
// time; a request takes one token.
//
// Such a bucket lets at most b + r·T requests through in any closed window
// [t, t+T]: the requests in the window can use the (at most) b tokens in the
// bucket at t plus the r·T tokens that arrive during the window, and no
// others. To guarantee "never more than Limit requests in any window of
// Period", set b + r·Period = Limit, that is
//
//	r = (Limit − Burst) / Period,  capacity = Burst.
//
// With Limit 200, Period 1m and Burst 1, r = 199 per minute (one token every
// 301.5ms): the first request goes at once, and over time 199 a minute
// go through. Burst must be less than Limit, or r would be 0 or negative.
//
// # Exact arithmetic
//
// The bucket is kept in its equivalent "virtual scheduling" form (GCRA) in
// integer nanoseconds, not float tokens, so that no rounding can let Limit+1
// requests into a window:
//
//	I   = ceil(Period / (Limit − Burst))   the time between tokens, rounded up
//	τ   = (Burst − 1) · I                  how far a request may run ahead
//	TAT = the "theoretical arrival time"; a fresh bucket's TAT is long ago
//
// A request at time t conforms when t ≥ TAT − τ, and then TAT becomes
// max(TAT, t) + I. If N conforming requests fall in a window, first at t₁ and
// last at t_N, each request pushes TAT at least I further and the last one
// needs t_N ≥ TAT − τ, so t_N − t₁ ≥ (N − Burst)·I. For a window of length
// Period that gives N ≤ Burst + ⌊Period / I⌋ ≤ Limit, because rounding I up
// makes Period / I ≤ Limit − Burst. Rounding up costs less than a nanosecond
// per token (for 200 a minute, a 3·10⁻⁹ share of the throughput); its only
// other effect is that when requests come exactly one token apart, the one
// that would have been the Limit-th of a window lands a few nanoseconds after
// the window closes.
//
// # Waiting in line
//
// A request that finds no token takes a reservation: the earliest instant at
// which it conforms, given every reservation already made. Reservations are
// made in arrival order and each one in a bucket comes after the previous
// one, so callers of one bucket are served first come, first served. A caller
// whose reservation is further away than it may wait — Config.MaxWait, or the
// time left before its context's deadline, whichever is less (a wait that
// would end just as the context does counts as too long) — is turned away
// at once without taking anything, with an error that tells when a token
// would have been its ([LimitedError.RetryAfter]). A caller whose context is
// cancelled while it waits gives its reservation back: a request that arrives
// later can use it if nobody in the same bucket is queued behind it (callers
// already queued keep their times, as with x/time/rate's CancelAt). A
// schedule keeps only the reservations still to come, at most
// Burst + MaxWait/I of them, so the state does not grow with traffic.
//
// # The account cap
//
// Config.Account optionally caps the requests of one account across all its
// buckets. A request then needs an instant that conforms to both its bucket
// and the account, and it is booked in both at that same instant. Booking each
// limiter on its own and waiting for the later of the two times (as reserving
// on two x/time/rate limiters would) is not enough: the limiter whose token was
// ready sooner believes it was used sooner than it was, hands the next token
// out too early, and the requests bunch up. With buckets of 10/s and an
// account cap of 15/s, 14 requests for one bucket followed by 14 for the
// other, all at once, would send 14 requests of the second bucket and 19 of
// the account within one second. Bookings in the account may be out of time
// order (a request for an idle bucket may go ahead of an earlier request that
// waits for its own busy bucket), so a backlog in one bucket does not hold up
// the others.
//
// # Pauses
//
// Pause(account, bucket, d) stops admitting requests for that account×bucket
// until d from now: Exotel's own 429 and its Retry-After. Without a
// Retry-After (d <= 0) the pause is an exponential backoff: 1s for the first
// pause since Exotel last accepted a request (Succeeded), doubling with each
// further one up to 60s, jittered to between half and all of that step so
// that replicas and buckets do not come back in step. No pause lasts longer
// than [MaxPause] (24h), whoever asks for it. A pause never shortens
// a longer one. While it lasts, a caller's earliest turn is the later of its
// place in line and the pause's end, and MaxWait and the deadline count
// against that; callers already in line are moved past the end (in
// [Memory], keeping their order and giving back the places they had). A
// success reported during a pause answers a request sent before it, so it
// does not reset the backoff.
//
// # Scope
//
// [Memory] keeps its state in process memory: each exogate replica enforces
// the full limits on its own. [Redis] keeps the buckets in Redis, shared by
// every replica.
//
// # Sharing the limits through Redis
//
// [Redis] asks github.com/go-redis/redis_rate for each token, with
//
//	redis_rate.Limit{Rate: Limit − Burst, Burst: Burst, Period: Period}
//
// per account×bucket key, plus one key per account for Config.Account. The
// script (redis_rate v10's allowN) computes T = Period/Rate and, at the
// instant now read from Redis's TIME, allows a request when
//
//	now ≥ max(TAT, now) + T − Burst·T,  that is  now ≥ TAT − (Burst − 1)·T,
//
// and then stores TAT = max(TAT, now) + T. That is the virtual scheduling
// above with I = T = Period/(Limit − Burst) and τ = (Burst − 1)·I, so a
// window of Period holds at most Burst + Period/I = Limit requests across
// the whole fleet, timed by Redis's clock when each script runs. The script
// keeps TAT in floating-point seconds (since 2017, about 60ns resolution
// today), not exact integers; that cannot let Limit + 1 requests into a
// window, which would take the errors of Limit + 1 requests adding up to a
// whole I (over a hundred milliseconds with Exotel's limits). What Exotel
// sees is also shifted by each request's own trip from exogate to Exotel,
// which no limiter controls.
//
// With the account cap on, a request takes a token from its bucket's key,
// then from the account's key. If the account says no, the bucket's token
// is lost: the bucket then lets through fewer requests than it could, never
// more. redis_rate cannot give a token back cleanly: AllowN with a negative
// n subtracts T from TAT, which, after the script's max(TAT, now) has
// skipped idle time, leaves TAT earlier than if the request had never been
// made (and the script writes nothing when the result is in the past), so
// a refund could over-admit.
//
// A request admitted at its first try costs one Redis round trip (two with
// the cap) and nothing else: pauses are known locally. In each replica, the
// callers of one account×bucket wait in a line; only its head talks to
// Redis, and when redis_rate says no it sleeps for the RetryAfter it gives
// and asks again. With Burst 1 any lateness of that second call is lost for
// good (Go's timers can be a millisecond late, and the call takes half a
// round trip to reach Redis): about 1.6ms per token against a loopback
// Redis, 0.5 % of a rule of 200 per minute, and only while callers queue
// (see docs/benchmarks.md). A caller who would join the line is turned
// away at once when its predicted wait (the head's RetryAfter, or the
// tokens the head last saw, plus one interval for each caller ahead; at
// least the end of a pause) is beyond MaxWait or its deadline. Lines of
// different account×buckets never wait for each other, and a Redis call
// takes at most RedisConfig.Timeout.
//
// A pause is written to Redis as the key prefix+"pause:"+account+":"+bucket
// (the pause's end in unix milliseconds, by Redis's clock, expiring with the
// pause) and published on the channel prefix+"pauses" as
// "<account> <bucket> <milliseconds>". Every replica follows that channel
// and keeps the pauses in a local table; whenever it subscribes (at Start,
// after an outage) it also reads the pause keys in force. Both use the time
// left, not the end, so that the replicas' clocks need not agree. Anyone who
// can write to Redis can publish there, so a pause read from Redis is cut to
// MaxPause, and a message that does not read as above is ignored and counted
// ([Redis.MalformedMessages]). Buckets without an entry in Config.Buckets
// share one pause per account, named "*". The backoff step is the key prefix+"pause-step:"+account+":"+bucket,
// counted up by each pause in the same script (and forgotten five minutes
// after the last), and deleted by Succeeded, which talks to Redis only when
// this replica has seen a pause of that account×bucket since its last reset.
//
// Every 2s each replica records itself in the sorted set prefix+"replicas"
// (score: Redis's time in milliseconds), drops the replicas not heard from
// for 10s, and counts the rest: [Redis.Replicas].
//
// When Redis cannot be reached or cannot serve (a dial, timeout or
// connection error, or LOADING, READONLY and the like), the replica switches
// to RedisConfig.OnFailure until a PING, tried every 500ms, succeeds again;
// it logs each switch once. With OnFailureLocal it limits itself to its
// share of every rule, using a [Memory] with each Limit divided by the
// replica count n (RedisConfig.Replicas, or the heartbeats' last count),
// rounded down: at most Limit/n in a window of Period each, so never more
// than Limit together (a share of 1 becomes one request per Period and a
// nanosecond, as a Rule needs Burst < Limit; with Limit < n no such share
// exists, and each replica gets its part of the rate, one request per
// n·Period/(Limit − Burst)). The switch itself is not seamless: the
// fallback starts with full buckets, and so does Redis when it comes back
// empty, so a window that spans a switch can see more than Limit. Pauses
// hold in the fallback too. An error that is Redis's answer to a bad
// request (a script error, a wrong type, an ACL refusal) is logged (at most
// every 10s) and that one request is answered by the OnFailure policy,
// without a switch.
package ratelimit
