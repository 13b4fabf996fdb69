package metrics

import (
	"bytes"
	"strings"
	"sync"

	vm "github.com/VictoriaMetrics/metrics"
)

// maxLabels is the most labels a family recorded on the hot path has
// (exogate_requests_total).
const maxLabels = 6

// labels holds a series' label values, unused trailing ones empty. As a
// fixed-size array it is a map key that a lookup builds on the stack, so
// recording into an existing series allocates nothing.
type labels [maxLabels]string

// vec is a family's series by label values. Each series is a
// VictoriaMetrics metric in the family's own set, which VictoriaMetrics
// names by a string holding the label values; vec maps the values to the
// metric without building that string, so that finding an existing series
// allocates nothing. Series are never removed: the callers bound every
// label's values (configured SIDs, Exotel's buckets and hosts, HTTP status
// codes).
type vec[T any] struct {
	desc      *Desc
	set       *vm.Set
	newSeries func(set *vm.Set, name string) *T // registers a series in set

	mu     sync.RWMutex
	series map[labels]*T
}

func newVec[T any](d *Desc, newSeries func(*vm.Set, string) *T) vec[T] {
	if len(d.labels) > maxLabels {
		panic("metrics: " + d.name + " has more than maxLabels labels")
	}
	return vec[T]{desc: d, set: vm.NewSet(), newSeries: newSeries, series: map[labels]*T{}}
}

// get returns the series of l, making it on first use. Values past the
// family's label count must be empty.
func (v *vec[T]) get(l labels) *T {
	v.mu.RLock()
	s := v.series[l]
	v.mu.RUnlock()
	if s == nil {
		s = v.add(l)
	}
	return s
}

// add makes the series of l under the write lock, unless another goroutine
// just did.
func (v *vec[T]) add(l labels) *T {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s := v.series[l]; s != nil {
		return s
	}
	// The key's values are copied: a caller's string may share the memory
	// of a request it parsed, which the map would otherwise keep alive.
	for i := range l {
		l[i] = strings.Clone(l[i])
	}
	s := v.newSeries(v.set, seriesName(v.desc, l[:len(v.desc.labels)]))
	v.series[l] = s
	return s
}

func (v *vec[T]) Describe() []*Desc { return []*Desc{v.desc} }

// Collect writes the family's series as VictoriaMetrics renders them,
// without HELP and TYPE lines (its ExposeMetadata is left off, the default:
// the Writer writes them, with the help text); a family with no series yet
// writes nothing.
func (v *vec[T]) Collect(w *Writer) {
	var b bytes.Buffer
	v.set.WritePrometheus(&b)
	if b.Len() > 0 {
		w.family(v.desc).text = b.Bytes()
	}
}

// counterVec is a counter family.
type counterVec struct{ vec[vm.Counter] }

func newCounterVec(name, help string, labels ...string) *counterVec {
	return &counterVec{newVec(newDesc(Counter, name, help, labels), (*vm.Set).NewCounter)}
}

func (v *counterVec) inc(l labels) { v.get(l).Inc() }

// gaugeVec is a gauge family whose values are set, not read at scrape time.
type gaugeVec struct{ vec[vm.Gauge] }

func newGaugeVec(name, help string, labels ...string) *gaugeVec {
	return &gaugeVec{newVec(newDesc(Gauge, name, help, labels), func(s *vm.Set, name string) *vm.Gauge {
		return s.NewGauge(name, nil)
	})}
}

func (v *gaugeVec) set(l labels, f float64) { v.get(l).Set(f) }

// histogramVec is a histogram family with fixed buckets (Prometheus's
// le buckets, not VictoriaMetrics' own vmrange ones).
type histogramVec struct{ vec[vm.PrometheusHistogram] }

func newHistogramVec(name, help string, buckets []float64, labels ...string) *histogramVec {
	return &histogramVec{newVec(newDesc(histogram, name, help, labels), func(s *vm.Set, name string) *vm.PrometheusHistogram {
		return s.NewPrometheusHistogramExt(name, buckets)
	})}
}

// observe records v in the series of l. An upper bound is inclusive;
// negative values and NaN are not recorded.
func (h *histogramVec) observe(l labels, v float64) { h.get(l).Update(v) }
