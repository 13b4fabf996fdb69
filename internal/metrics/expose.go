package metrics

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ContentType is the media type of the Prometheus text exposition format
// 0.0.4, the only format served.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a metric family's type. Collectors write counters and gauges;
// histograms and summaries are internal.
type Type uint8

const (
	Counter   Type = iota + 1 // a value that only goes up
	Gauge                     // a value that goes up and down
	histogram                 // observations counted in buckets
	summary                   // observations as quantiles (go_gc_duration_seconds)
)

func (t Type) String() string {
	switch t {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	case histogram:
		return "histogram"
	case summary:
		return "summary"
	}
	return "untyped"
}

// Desc describes a metric family: its name, help text, type and label
// names. It is made once and shared by every scrape.
type Desc struct {
	name, help string
	typ        Type
	labels     []string
	bounds     []string // histogram: the le values, "+Inf" last; summary: the quantile values
}

// NewDesc describes a counter or gauge family for a Collector. It panics on
// an invalid name, label name or type, as a wiring bug.
func NewDesc(typ Type, name, help string, labels ...string) *Desc {
	if typ != Counter && typ != Gauge {
		panic("metrics: " + name + ": a Collector writes counters and gauges only")
	}
	return newDesc(typ, name, help, labels, nil)
}

// newDesc makes a Desc of any type; bounds are a histogram's bucket upper
// bounds (without +Inf) or a summary's quantiles.
func newDesc(typ Type, name, help string, labels []string, bounds []float64) *Desc {
	if !validName(name, true) {
		panic("metrics: invalid metric name " + strconv.Quote(name))
	}
	for _, l := range labels {
		if !validName(l, false) || strings.HasPrefix(l, "__") || l == "le" || l == "quantile" {
			panic("metrics: " + name + ": invalid label name " + strconv.Quote(l))
		}
	}
	d := &Desc{name: name, help: help, typ: typ, labels: slices.Clone(labels)}
	for _, b := range bounds {
		d.bounds = append(d.bounds, string(appendFloat(nil, b)))
	}
	if typ == histogram {
		d.bounds = append(d.bounds, "+Inf")
	}
	return d
}

// validName reports whether s is a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)
// or, without colons, a label name.
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || colon && c == ':' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// Collector writes metric families read at scrape time (limiter pauses,
// credential ages).
type Collector interface {
	// Describe returns the families Collect writes, so that Register can
	// refuse a duplicate name.
	Describe() []*Desc
	// Collect writes the current samples. A family with no sample is left
	// out of the scrape.
	Collect(w *Writer)
}

// Writer gathers the samples of one scrape, from every collector, and
// renders them in the text format: families sorted by name, series sorted
// by label values.
type Writer struct {
	fams map[string]*familySamples
}

type familySamples struct {
	desc   *Desc
	series []sample
}

// sample is one series of a family.
type sample struct {
	labels []string  // the values, in the order of the Desc's label names
	value  float64   // counter or gauge value; a histogram's or summary's sum
	counts []uint64  // histogram: cumulative count per bucket, +Inf (the total) last
	quants []float64 // summary: the value at each quantile
	count  uint64    // summary: the number of observations
}

// Write adds a sample of a counter or gauge family, with one value per
// label name of d. It panics if the number of values is wrong.
func (w *Writer) Write(d *Desc, v float64, labelValues ...string) {
	if d.typ != Counter && d.typ != Gauge {
		panic("metrics: Write of a " + d.typ.String() + " (" + d.name + ")")
	}
	w.add(d, sample{labels: slices.Clone(labelValues), value: v})
}

// add appends a sample to its family. The sample's slices are kept, not
// copied: the caller must not change them afterwards.
func (w *Writer) add(d *Desc, s sample) {
	if len(s.labels) != len(d.labels) {
		panic("metrics: " + d.name + ": " + strconv.Itoa(len(s.labels)) + " label values for " + strconv.Itoa(len(d.labels)) + " labels")
	}
	if w.fams == nil {
		w.fams = map[string]*familySamples{}
	}
	f := w.fams[d.name]
	if f == nil {
		// Two Descs of one name are refused by Register; should an unregistered
		// one come here anyway, its samples join the first one's family.
		f = &familySamples{desc: d}
		w.fams[d.name] = f
	}
	f.series = append(f.series, s)
}

// appendText renders the gathered samples in the text exposition format.
func (w *Writer) appendText(b []byte) []byte {
	names := make([]string, 0, len(w.fams))
	for name := range w.fams {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f := w.fams[name]
		d := f.desc
		slices.SortStableFunc(f.series, func(x, y sample) int { return slices.Compare(x.labels, y.labels) })

		b = append(b, "# HELP "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = appendEscaped(b, d.help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, d.typ.String()...)
		b = append(b, '\n')
		for _, s := range f.series {
			switch d.typ {
			case histogram:
				for i, le := range d.bounds {
					b = appendSeries(b, name, "_bucket", d.labels, s.labels, "le", le)
					b = strconv.AppendUint(b, s.counts[i], 10)
					b = append(b, '\n')
				}
				b = appendSeries(b, name, "_sum", d.labels, s.labels, "", "")
				b = appendFloat(b, s.value)
				b = append(b, '\n')
				b = appendSeries(b, name, "_count", d.labels, s.labels, "", "")
				b = strconv.AppendUint(b, s.counts[len(s.counts)-1], 10)
				b = append(b, '\n')
			case summary:
				for i, q := range d.bounds {
					b = appendSeries(b, name, "", d.labels, s.labels, "quantile", q)
					b = appendFloat(b, s.quants[i])
					b = append(b, '\n')
				}
				b = appendSeries(b, name, "_sum", d.labels, s.labels, "", "")
				b = appendFloat(b, s.value)
				b = append(b, '\n')
				b = appendSeries(b, name, "_count", d.labels, s.labels, "", "")
				b = strconv.AppendUint(b, s.count, 10)
				b = append(b, '\n')
			default:
				b = appendSeries(b, name, "", d.labels, s.labels, "", "")
				b = appendFloat(b, s.value)
				b = append(b, '\n')
			}
		}
	}
	return b
}

// appendSeries appends a series' name and labels, and the space before its
// value: name_suffix{l1="v1",...,extra="extraValue"}.
func appendSeries(b []byte, name, suffix string, labels, values []string, extra, extraValue string) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if len(labels) > 0 || extra != "" {
		b = append(b, '{')
		for i, l := range labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, l...)
			b = append(b, `="`...)
			b = appendEscaped(b, values[i], true)
			b = append(b, '"')
		}
		if extra != "" {
			if len(labels) > 0 {
				b = append(b, ',')
			}
			b = append(b, extra...)
			b = append(b, `="`...)
			b = append(b, extraValue...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, ' ')
}

// appendEscaped appends s escaped for a HELP line (backslash and newline)
// or, with quote, for a label value (double quote too). Invalid UTF-8
// becomes U+FFFD, as the format is UTF-8.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for _, r := range s {
		switch {
		case r == '\\':
			b = append(b, `\\`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return b
}

// appendFloat formats a value as Prometheus does.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// serve writes a scrape to an HTTP response.
func serve(rw http.ResponseWriter, gather func(*Writer)) {
	var w Writer
	gather(&w)
	rw.Header().Set("Content-Type", ContentType)
	_, _ = rw.Write(w.appendText(make([]byte, 0, 16<<10)))
}
