package ratelimit

import (
	"math"
	"slices"
	"time"
)

// longAgo is the TAT of a fresh schedule: far enough in the past that the
// bucket is full, near enough that subtracting τ cannot overflow.
const longAgo = math.MinInt64 / 4

// A schedule is one Rule's bookings in virtual-scheduling (GCRA) form, in
// integer nanoseconds since the owning Memory's epoch (see the package
// documentation for I, τ and TAT). Bookings at or before settled are folded
// into tat; later ones wait in future, so that one can be taken back out and
// so that a booking can be slotted in before later ones. A schedule is not
// safe for concurrent use: its lane's mutex guards it.
type schedule struct {
	interval int64   // I
	tau      int64   // τ
	tat      int64   // TAT after every booking at or before settled
	settled  int64   // the latest instant the schedule has been brought up to
	future   []int64 // bookings after settled, in ascending order
}

// newSchedule returns an empty schedule for the valid, on Rule r, with room
// for the bookings a caller can make at most maxWait ahead.
func newSchedule(r Rule, maxWait time.Duration) *schedule {
	s := &schedule{
		interval: r.interval(),
		tat:      longAgo,
		settled:  longAgo,
	}
	s.tau = int64(r.burst()-1) * s.interval
	if maxWait > 0 {
		// At most Burst + maxWait/I bookings conform within maxWait.
		n := min(int64(r.burst())+int64(maxWait)/s.interval+1, 1024)
		s.future = make([]int64, 0, n)
	}
	return s
}

// settle folds the bookings at or before now into tat.
func (s *schedule) settle(now int64) {
	if now <= s.settled {
		return
	}
	s.settled = now
	i := 0
	for ; i < len(s.future) && s.future[i] <= now; i++ {
		s.tat = max(s.tat, s.future[i]) + s.interval
	}
	if i > 0 {
		n := copy(s.future, s.future[i:])
		s.future = s.future[:n]
	}
}

// earliest returns the earliest instant a >= x (and >= settled) at which one
// more booking conforms and leaves every later booking conforming.
//
// It tries the gaps between bookings in time order. Within a gap the
// earliest conforming instant is the best one: a later instant only pushes
// TAT further for the bookings after it.
func (s *schedule) earliest(x int64) int64 {
	x = max(x, s.settled)
	tat := s.tat
	for k, f := range s.future {
		if c := max(x, tat-s.tau); c <= f && s.fits(k, max(tat, c)+s.interval, tat) {
			return c
		}
		tat = max(tat, f) + s.interval
		x = max(x, f)
	}
	return max(x, tat-s.tau)
}

// fits reports whether the bookings from future[k] on still conform when
// TAT before future[k] is with instead of without (with >= without).
func (s *schedule) fits(k int, with, without int64) bool {
	for _, f := range s.future[k:] {
		if with <= without {
			// From here on the two histories are the same, and the
			// schedule without the new booking conforms.
			return true
		}
		if f < with-s.tau {
			return false
		}
		with = max(with, f) + s.interval
		without = max(without, f) + s.interval
	}
	return true
}

// book records a booking at a, which earliest returned.
func (s *schedule) book(a int64) {
	if a <= s.settled {
		// earliest never returns less than settled, and every future
		// booking is later, so a is next in time order.
		s.tat = max(s.tat, a) + s.interval
		return
	}
	i, _ := slices.BinarySearch(s.future, a)
	s.future = slices.Insert(s.future, i, a)
}

// cancel takes back a booking at a, unless its instant has passed.
func (s *schedule) cancel(a int64) {
	if a <= s.settled {
		return
	}
	if i, ok := slices.BinarySearch(s.future, a); ok {
		s.future = slices.Delete(s.future, i, i+1)
	}
}
