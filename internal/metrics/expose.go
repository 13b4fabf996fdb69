package metrics

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	vm "github.com/VictoriaMetrics/metrics"
)

// ContentType is the media type of the Prometheus text exposition format
// 0.0.4, the only format served.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a metric family's type. Collectors write counters and gauges;
// histograms are internal.
type Type uint8

const (
	Counter   Type = iota + 1 // a value that only goes up
	Gauge                     // a value that goes up and down
	histogram                 // observations counted in buckets
)

func (t Type) String() string {
	switch t {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	case histogram:
		return "histogram"
	}
	return "untyped"
}

// Desc describes a metric family: its name, help text, type and label
// names. It is made once and shared by every scrape.
type Desc struct {
	name, help string
	typ        Type
	labels     []string
}

// NewDesc describes a counter or gauge family for a Collector. It panics on
// an invalid name, label name or type, as a wiring bug.
func NewDesc(typ Type, name, help string, labels ...string) *Desc {
	if typ != Counter && typ != Gauge {
		panic("metrics: " + name + ": a Collector writes counters and gauges only")
	}
	return newDesc(typ, name, help, labels)
}

// newDesc makes a Desc of any type.
func newDesc(typ Type, name, help string, labels []string) *Desc {
	if !validName(name, true) {
		panic("metrics: invalid metric name " + strconv.Quote(name))
	}
	for _, l := range labels {
		if !validName(l, false) || strings.HasPrefix(l, "__") || l == "le" || l == "quantile" {
			panic("metrics: " + name + ": invalid label name " + strconv.Quote(l))
		}
	}
	return &Desc{name: name, help: help, typ: typ, labels: slices.Clone(labels)}
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

// seriesName is a series as VictoriaMetrics names it and the exposition
// writes it: name{l1="v1",...}, or the bare name without labels.
func seriesName(d *Desc, values []string) string {
	if len(d.labels) == 0 {
		return d.name
	}
	b := append([]byte(d.name), '{')
	for i, l := range d.labels {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, l...)
		b = append(b, `="`...)
		b = appendEscaped(b, values[i], true)
		b = append(b, '"')
	}
	return string(append(b, '}'))
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
// renders them in the text format: families sorted by name, each with its
// HELP and TYPE lines, series sorted by name and labels.
type Writer struct {
	fams map[string]*familySamples
}

// familySamples is one family's part of a scrape: the text of a family
// VictoriaMetrics holds, or the samples a Collector wrote.
type familySamples struct {
	desc   *Desc
	text   []byte
	series []sample
}

// sample is one series of a counter or gauge family.
type sample struct {
	name  string // as seriesName makes it
	value float64
}

// Write adds a sample of a counter or gauge family, with one value per
// label name of d. It panics if the number of values is wrong.
func (w *Writer) Write(d *Desc, v float64, labelValues ...string) {
	if d.typ != Counter && d.typ != Gauge {
		panic("metrics: Write of a " + d.typ.String() + " (" + d.name + ")")
	}
	if len(labelValues) != len(d.labels) {
		panic("metrics: " + d.name + ": " + strconv.Itoa(len(labelValues)) + " label values for " + strconv.Itoa(len(d.labels)) + " labels")
	}
	f := w.family(d)
	f.series = append(f.series, sample{name: seriesName(d, labelValues), value: v})
}

// family returns the samples of d's family in this scrape, made on first
// use. Two Descs of one name are refused by Register; should an
// unregistered one come here anyway, its samples join the first one's
// family.
func (w *Writer) family(d *Desc) *familySamples {
	if w.fams == nil {
		w.fams = map[string]*familySamples{}
	}
	f := w.fams[d.name]
	if f == nil {
		f = &familySamples{desc: d}
		w.fams[d.name] = f
	}
	return f
}

// writeText renders the gathered families in the text exposition format.
func (w *Writer) writeText(b *bytes.Buffer) {
	names := make([]string, 0, len(w.fams))
	for name := range w.fams {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f := w.fams[name]
		b.WriteString("# HELP " + name + " ")
		b.Write(appendEscaped(nil, f.desc.help, false))
		b.WriteString("\n# TYPE " + name + " " + f.desc.typ.String() + "\n")
		b.Write(f.text)
		slices.SortStableFunc(f.series, func(x, y sample) int { return strings.Compare(x.name, y.name) })
		for _, s := range f.series {
			if f.desc.typ == Counter {
				vm.WriteCounterFloat64(b, s.name, s.value)
			} else {
				vm.WriteGaugeFloat64(b, s.name, s.value)
			}
		}
	}
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

// serve writes a scrape to an HTTP response: the families gather writes,
// then, with runtime, the Go runtime's go_* and the process's process_*
// families as VictoriaMetrics writes them (without HELP and TYPE lines).
func serve(rw http.ResponseWriter, gather func(*Writer), runtime bool) {
	var w Writer
	gather(&w)
	b := bytes.NewBuffer(make([]byte, 0, 16<<10))
	w.writeText(b)
	if runtime {
		vm.WriteGoMetrics(b)
		vm.WriteProcMetrics(b)
		vm.WriteFDMetrics(b)
	}
	rw.Header().Set("Content-Type", ContentType)
	_, _ = rw.Write(b.Bytes())
}
