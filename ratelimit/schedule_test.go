package ratelimit

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// conforms replays the bookings (in ascending order) and one more at y from
// a fresh schedule, in time order, and reports whether each one conforms.
func conforms(sorted []int64, y, interval, tau int64) bool {
	tat := int64(longAgo)
	ok := func(b int64) bool {
		if b < tat-tau {
			return false
		}
		tat = max(tat, b) + interval
		return true
	}
	i, _ := slices.BinarySearch(sorted, y)
	for _, b := range sorted[:i] {
		if !ok(b) {
			return false
		}
	}
	if !ok(y) {
		return false
	}
	for _, b := range sorted[i:] {
		if !ok(b) {
			return false
		}
	}
	return true
}

// TestScheduleAgainstReplay books, cancels and settles at random, on small
// integer instants, and checks each answer of earliest against a replay of
// every booking from scratch: the answer conforms, no earlier instant does,
// and the schedule holds exactly the bookings still to come.
func TestScheduleAgainstReplay(t *testing.T) {
	tests := []struct {
		name          string
		interval, tau int64
	}{
		{"burst 1", 10, 0},
		{"burst 4", 10, 30},
		{"burst 2", 7, 7},
		{"burst 17", 3, 48},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(i)))
			s := &schedule{interval: tc.interval, tau: tc.tau, tat: longAgo, settled: longAgo}
			var all []int64 // every booking not cancelled, in ascending order
			now := int64(0)
			gapFills := 0
			for step := range 600 {
				now += rng.Int64N(4)
				s.settle(now)
				if rng.IntN(4) == 0 && len(s.future) > 0 {
					a := s.future[rng.IntN(len(s.future))]
					s.cancel(a)
					i, _ := slices.BinarySearch(all, a)
					all = slices.Delete(all, i, i+1)
				} else {
					x := now + rng.Int64N(120)
					a := s.earliest(x)
					if a < x {
						t.Fatalf("step %d: earliest(%d) = %d, before x", step, x, a)
					}
					if !conforms(all, a, tc.interval, tc.tau) {
						t.Fatalf("step %d: earliest(%d) = %d, which does not conform", step, x, a)
					}
					for y := x; y < a; y++ {
						if conforms(all, y, tc.interval, tc.tau) {
							t.Fatalf("step %d: earliest(%d) = %d, but %d conforms", step, x, a, y)
						}
					}
					if len(s.future) > 0 && a < s.future[len(s.future)-1] {
						gapFills++
					}
					s.book(a)
					i, _ := slices.BinarySearch(all, a)
					all = slices.Insert(all, i, a)
				}
				var want []int64
				for _, b := range all {
					if b > now {
						want = append(want, b)
					}
				}
				slices.Sort(want)
				if !slices.Equal(s.future, want) {
					t.Fatalf("step %d: future = %v, want %v", step, s.future, want)
				}
			}
			if gapFills < 20 {
				t.Errorf("only %d bookings went between others: the test does not exercise out-of-order booking", gapFills)
			}
		})
	}
}
