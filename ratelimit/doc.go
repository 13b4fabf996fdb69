// Package ratelimit keeps the requests exogate sends to Exotel within
// Exotel's per-account limits (200 requests a minute for each API family, or
// "bucket"), so that Exotel never has to answer 429. It knows nothing about
// HTTP: the proxy asks [Memory.Admit] before it forwards a request and maps a
// rejection to a 429 with a Retry-After header.
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
// # Scope
//
// [Memory] keeps its state in process memory: each exogate replica enforces
// the full limits on its own.
package ratelimit
