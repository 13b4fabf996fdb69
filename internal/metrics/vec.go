package metrics

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
)

// maxLabels is the most labels a family recorded on the hot path has
// (exogate_requests_total).
const maxLabels = 6

// labels holds a series' label values, unused trailing ones empty. As a
// fixed-size array it is a map key that a lookup builds on the stack, so
// recording into an existing series allocates nothing.
type labels [maxLabels]string

// vec is a family's series by label values. Series are never removed: the
// callers bound every label's values (configured SIDs, Exotel's buckets and
// hosts, HTTP status codes).
type vec[T any] struct {
	desc *Desc
	init func(*T) // prepares a new series; nil if its zero value will do

	mu     sync.RWMutex
	series map[labels]*entry[T]
}

type entry[T any] struct {
	values []string // the label values, for the exposition
	m      T
}

func newVec[T any](d *Desc, init func(*T)) vec[T] {
	if len(d.labels) > maxLabels {
		panic("metrics: " + d.name + " has more than maxLabels labels")
	}
	return vec[T]{desc: d, init: init, series: map[labels]*entry[T]{}}
}

// get returns the series of l, making it on first use. Values past the
// family's label count must be empty.
func (v *vec[T]) get(l labels) *T {
	v.mu.RLock()
	e := v.series[l]
	v.mu.RUnlock()
	if e == nil {
		e = v.add(l)
	}
	return &e.m
}

// add makes the series of l under the write lock, unless another goroutine
// just did.
func (v *vec[T]) add(l labels) *entry[T] {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e := v.series[l]; e != nil {
		return e
	}
	// The values are copied: a caller's string may share the memory of a
	// request it parsed, which the map would otherwise keep alive.
	e := &entry[T]{values: make([]string, len(v.desc.labels))}
	for i := range e.values {
		e.values[i] = strings.Clone(l[i])
		l[i] = e.values[i]
	}
	if v.init != nil {
		v.init(&e.m)
	}
	v.series[l] = e
	return e
}

// each calls fn for every series, under the read lock.
func (v *vec[T]) each(fn func(values []string, m *T)) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, e := range v.series {
		fn(e.values, &e.m)
	}
}

func (v *vec[T]) Describe() []*Desc { return []*Desc{v.desc} }

// counterVec is a counter family. Its counts are whole numbers, so a plain
// atomic integer suffices.
type counterVec struct{ vec[atomic.Uint64] }

func newCounterVec(name, help string, labels ...string) *counterVec {
	return &counterVec{newVec[atomic.Uint64](newDesc(Counter, name, help, labels, nil), nil)}
}

func (v *counterVec) inc(l labels) { v.get(l).Add(1) }

func (v *counterVec) Collect(w *Writer) {
	v.each(func(values []string, n *atomic.Uint64) {
		w.add(v.desc, sample{labels: values, value: float64(n.Load())})
	})
}

// gaugeVec is a gauge family; each value is a float64's bits.
type gaugeVec struct{ vec[atomic.Uint64] }

func newGaugeVec(name, help string, labels ...string) *gaugeVec {
	return &gaugeVec{newVec[atomic.Uint64](newDesc(Gauge, name, help, labels, nil), nil)}
}

func (v *gaugeVec) set(l labels, f float64) { v.get(l).Store(math.Float64bits(f)) }

func (v *gaugeVec) Collect(w *Writer) {
	v.each(func(values []string, bits *atomic.Uint64) {
		w.add(v.desc, sample{labels: values, value: math.Float64frombits(bits.Load())})
	})
}

// hist is one histogram series.
type hist struct {
	counts []atomic.Uint64 // observations per bucket, not cumulative; +Inf last
	sum    atomic.Uint64   // float64 bits of the sum of observations
}

// histogramVec is a histogram family with fixed buckets.
type histogramVec struct {
	vec[hist]
	upper []float64 // bucket upper bounds, ascending, +Inf implied
}

func newHistogramVec(name, help string, buckets []float64, labels ...string) *histogramVec {
	d := newDesc(histogram, name, help, labels, buckets)
	h := &histogramVec{upper: buckets}
	h.vec = newVec(d, func(s *hist) { s.counts = make([]atomic.Uint64, len(buckets)+1) })
	return h
}

// observe records v in the series of l.
func (h *histogramVec) observe(l labels, v float64) {
	s := h.get(l)
	// Buckets are few (at most 14): a linear search beats a binary one.
	// An upper bound is inclusive; NaN falls through to +Inf.
	i := 0
	for i < len(h.upper) && !(v <= h.upper[i]) {
		i++
	}
	s.counts[i].Add(1)
	for {
		old := s.sum.Load()
		if s.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Collect writes cumulative buckets. The count is the +Inf bucket, so the
// two always agree, even during concurrent observations; the sum may lag
// or lead by the observations in flight.
func (h *histogramVec) Collect(w *Writer) {
	h.each(func(values []string, s *hist) {
		counts := make([]uint64, len(s.counts))
		var n uint64
		for i := range s.counts {
			n += s.counts[i].Load()
			counts[i] = n
		}
		w.add(h.desc, sample{labels: values, value: math.Float64frombits(s.sum.Load()), counts: counts})
	})
}
