package metrics

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeText serves one scrape and checks its status and content type.
func scrapeText(t *testing.T, m *Metrics) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	return rec.Body.Bytes()
}

// scrape parses a whole scrape with Prometheus's own text parser.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	body := scrapeText(t, m)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the scrape: %v\n%s", err, body)
	}
	return fams
}

// series returns the series of family name with exactly the labels want,
// failing the test if there is none.
func series(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) == len(want) {
			match := true
			for k, v := range want {
				match = match && got[k] == v
			}
			if match {
				return m
			}
		}
	}
	t.Fatalf("%s: no series %v among %v", name, want, f.GetMetric())
	return nil
}

// exercise records something in every exogate family.
func exercise(m *Metrics) {
	m.Observe(Request{Account: "acme", Bucket: "sms", Method: "POST", Status: 200, Duration: 3 * time.Millisecond,
		Admitted: true, Waited: time.Millisecond, Injected: true, ClientAuthRemoved: true})
	m.Observe(Request{Account: "acme", Bucket: "sms", Method: "POST", Status: 429, FromGateway: true, Rejected: true})
	m.Observe(Request{Account: "acme", Bucket: "voice_v1", Method: "GET", Status: 503, FromGateway: true, InjectFailed: true})
	m.Upstream("acme", "api", 401, 20*time.Millisecond)
	m.Breaker("acme", "ccm", 2, "open", true)
	m.Reload(true)
	m.Reload(false)
}

func TestFamilyTypes(t *testing.T) {
	m := New("v1.2.3")
	exercise(m)
	fams := scrape(t, m)

	counter, gauge, hist := dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_HISTOGRAM
	want := map[string]dto.MetricType{
		"exogate_requests_total":             counter,
		"exogate_request_duration_seconds":   hist,
		"exogate_upstream_duration_seconds":  hist,
		"exogate_limiter_wait_seconds":       hist,
		"exogate_limiter_admitted_total":     counter,
		"exogate_limiter_rejected_total":     counter,
		"exogate_exotel_responses_total":     counter,
		"exogate_breaker_state":              gauge,
		"exogate_breaker_transitions_total":  counter,
		"exogate_credentials_injected_total": counter,
		"exogate_credentials_failed_total":   counter,
		"exogate_client_auth_removed_total":  counter,
		"exogate_config_reloads_total":       counter,
		"exogate_build_info":                 gauge,
	}
	for name, typ := range want {
		f := fams[name]
		if f == nil {
			t.Errorf("family %s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s: type %v, want %v", name, f.GetType(), typ)
		}
		if f.GetHelp() == "" {
			t.Errorf("%s: no help", name)
		}
	}
	for name := range fams {
		if _, ok := want[name]; !ok && strings.HasPrefix(name, "exogate_") {
			t.Errorf("unexpected family %s", name)
		}
	}
	// The runtime and process families the documentation and dashboards
	// name, as VictoriaMetrics writes them: without HELP and TYPE.
	runtimeFams := []string{"go_goroutines", "go_threads", "go_info", "go_memstats_heap_inuse_bytes",
		"go_gc_duration_seconds", "go_gc_duration_seconds_count", "go_memstats_last_gc_time_seconds"}
	if runtime.GOOS == "linux" {
		runtimeFams = append(runtimeFams, "process_cpu_seconds_total", "process_resident_memory_bytes",
			"process_virtual_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds")
	}
	for _, name := range runtimeFams {
		if f := fams[name]; f == nil {
			t.Errorf("family %s missing", name)
		} else if f.GetType() != dto.MetricType_UNTYPED {
			t.Errorf("%s: type %v, want untyped", name, f.GetType())
		}
	}

	if v := series(t, fams, "exogate_build_info", map[string]string{"version": "v1.2.3", "goversion": runtime.Version()}).GetGauge().GetValue(); v != 1 {
		t.Errorf("exogate_build_info = %v", v)
	}
	if v := series(t, fams, "go_info", map[string]string{"version": runtime.Version()}).GetUntyped().GetValue(); v != 1 {
		t.Errorf("go_info = %v", v)
	}
	if v := series(t, fams, "go_goroutines", nil).GetUntyped().GetValue(); v < 1 {
		t.Errorf("go_goroutines = %v", v)
	}
	if v := series(t, fams, "go_memstats_heap_inuse_bytes", nil).GetUntyped().GetValue(); v <= 0 {
		t.Errorf("go_memstats_heap_inuse_bytes = %v", v)
	}
	if v := series(t, fams, "exogate_breaker_state", map[string]string{"account": "acme", "host": "ccm"}).GetGauge().GetValue(); v != 2 {
		t.Errorf("exogate_breaker_state = %v, want 2", v)
	}
}

// The help texts of the exogate families are unchanged from the
// client_golang version (dashboards and docs quote them).
func TestHelp(t *testing.T) {
	m := New("v")
	exercise(m)
	fams := scrape(t, m)
	for name, help := range map[string]string{
		"exogate_requests_total":           "Requests answered, by account, bucket, method, status code, who made the answer (gateway or upstream) and calling client.",
		"exogate_request_duration_seconds": "Time from request to the end of the answer, limiter wait included.",
		"exogate_breaker_state":            "Circuit breaker state per account and upstream host: 0 closed, 1 half-open, 2 open.",
		"exogate_build_info":               "exogate's version and Go version; always 1.",
	} {
		if got := fams[name].GetHelp(); got != help {
			t.Errorf("%s help %q, want %q", name, got, help)
		}
	}
}

func TestCounter(t *testing.T) {
	m := New("v")
	const n = 7
	for range n {
		m.Observe(Request{Account: "acme", Bucket: "sms", Method: "POST", Status: 200, Admitted: true, Injected: true})
	}
	m.Observe(Request{Account: "acme", Bucket: "sms", Method: "BREW", Status: 200, Client: "crm"})
	m.Observe(Request{Account: UnknownAccount, Method: "GET", Status: 404, FromGateway: true, Admitted: true})
	fams := scrape(t, m)

	c := func(name string, labels map[string]string) float64 {
		return series(t, fams, name, labels).GetCounter().GetValue()
	}
	if v := c("exogate_requests_total", map[string]string{"account": "acme", "bucket": "sms", "method": "POST", "code": "200", "source": "upstream", "client": "anonymous"}); v != n {
		t.Errorf("requests = %v, want %d", v, n)
	}
	if v := c("exogate_requests_total", map[string]string{"account": "acme", "bucket": "sms", "method": "other", "code": "200", "source": "upstream", "client": "crm"}); v != 1 {
		t.Errorf("requests with an odd method = %v, want 1", v)
	}
	if v := c("exogate_requests_total", map[string]string{"account": "unknown", "bucket": "", "method": "GET", "code": "404", "source": "gateway", "client": "anonymous"}); v != 1 {
		t.Errorf("unknown account's requests = %v, want 1", v)
	}
	if v := c("exogate_limiter_admitted_total", map[string]string{"account": "acme", "bucket": "sms"}); v != n {
		t.Errorf("admitted = %v, want %d", v, n)
	}
	if v := c("exogate_credentials_injected_total", map[string]string{"account": "acme"}); v != n {
		t.Errorf("injected = %v, want %d", v, n)
	}
	// The unknown account records its request and nothing else.
	if f := fams["exogate_limiter_admitted_total"]; len(f.GetMetric()) != 1 {
		t.Errorf("admitted has %d series, want 1 (none for the unknown account)", len(f.GetMetric()))
	}
	// A family without series is left out.
	if f, ok := fams["exogate_credentials_failed_total"]; ok {
		t.Errorf("empty family exposed: %v", f)
	}
}

func TestHistogram(t *testing.T) {
	m := New("v")
	// Buckets .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 30; an upper
	// bound is inclusive.
	obs := []time.Duration{500 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 200 * time.Millisecond, 31 * time.Second}
	var sum float64
	for _, d := range obs {
		m.Upstream("acme", "api", 200, d)
		sum += d.Seconds()
	}
	fams := scrape(t, m)
	h := series(t, fams, "exogate_upstream_duration_seconds", map[string]string{"account": "acme", "host": "api"}).GetHistogram()

	want := map[float64]uint64{.001: 2, .0025: 2, .005: 3, .01: 3, .025: 3, .05: 3, .1: 3, .25: 4, .5: 4, 1: 4, 2.5: 4, 5: 4, 10: 4, 30: 4, math.Inf(1): 5}
	var les []float64
	for _, b := range h.GetBucket() {
		les = append(les, b.GetUpperBound())
		if w, ok := want[b.GetUpperBound()]; !ok || b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
	if !slices.IsSorted(les) || len(les) != len(want) {
		t.Errorf("buckets %v", les)
	}
	if h.GetSampleCount() != uint64(len(obs)) {
		t.Errorf("count %d, want %d", h.GetSampleCount(), len(obs))
	}
	if math.Abs(h.GetSampleSum()-sum) > 1e-9 {
		t.Errorf("sum %v, want %v", h.GetSampleSum(), sum)
	}
	text := string(scrapeText(t, m))
	for _, line := range []string{
		`exogate_upstream_duration_seconds_bucket{account="acme",host="api",le="0.0025"} 2`,
		`exogate_upstream_duration_seconds_bucket{account="acme",host="api",le="30"} 4`,
		`exogate_upstream_duration_seconds_bucket{account="acme",host="api",le="+Inf"} 5`,
		`exogate_upstream_duration_seconds_count{account="acme",host="api"} 5`,
	} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("scrape lacks %s", line)
		}
	}
	// Exotel's 401 and 429 only.
	if _, ok := fams["exogate_exotel_responses_total"]; ok {
		t.Error("exotel_responses_total recorded a 200")
	}
}

// testCollector writes what it is given, at scrape time.
type testCollector struct {
	d      *Desc
	values []float64
	labels [][]string
}

func (c *testCollector) Describe() []*Desc { return []*Desc{c.d} }
func (c *testCollector) Collect(w *Writer) {
	for i, v := range c.values {
		w.Write(c.d, v, c.labels[i]...)
	}
}

func TestEscaping(t *testing.T) {
	m := New("v")
	odd := "a\"b\\c\nd"
	m.Observe(Request{Account: odd, Bucket: "sms", Method: "GET", Status: 200})
	c := &testCollector{
		d:      NewDesc(Gauge, "exogate_test_gauge", "Help with a \\ backslash\nand a newline.", "name"),
		values: []float64{1, math.Inf(1), math.Inf(-1), math.NaN(), 1e-7, 123456789},
		labels: [][]string{{odd}, {"inf"}, {"-inf"}, {"nan"}, {"small"}, {"big"}},
	}
	m.Register(c)
	fams := scrape(t, m)

	series(t, fams, "exogate_requests_total", map[string]string{"account": odd, "bucket": "sms", "method": "GET", "code": "200", "source": "upstream", "client": "anonymous"})
	if got := fams["exogate_test_gauge"].GetHelp(); got != c.d.help {
		t.Errorf("help %q, want %q", got, c.d.help)
	}
	for i, v := range c.values {
		got := series(t, fams, "exogate_test_gauge", map[string]string{"name": c.labels[i][0]}).GetGauge().GetValue()
		if got != v && !(math.IsNaN(got) && math.IsNaN(v)) {
			t.Errorf("%s: %v, want %v", c.labels[i][0], got, v)
		}
	}
	text := string(scrapeText(t, m))
	for _, line := range []string{
		`# HELP exogate_test_gauge Help with a \\ backslash\nand a newline.`,
		`exogate_test_gauge{name="a\"b\\c\nd"} 1`,
		`exogate_test_gauge{name="inf"} +Inf`,
		`exogate_test_gauge{name="-inf"} -Inf`,
		`exogate_test_gauge{name="nan"} NaN`,
		`exogate_test_gauge{name="small"} 1e-07`,
		`exogate_test_gauge{name="big"} 1.23456789e+08`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("scrape lacks %s", line)
		}
	}
}

// Invalid UTF-8 in a label value is replaced, so the scrape stays parsable.
func TestInvalidUTF8(t *testing.T) {
	m := New("v")
	m.Reload(true)
	m.Register(&testCollector{d: NewDesc(Counter, "exogate_test_total", "Test."), values: []float64{3}, labels: [][]string{{}}})
	m.Register(&testCollector{d: NewDesc(Gauge, "exogate_test_utf8", "Test.", "v"), values: []float64{1}, labels: [][]string{{"a\xffb"}}})
	fams := scrape(t, m)
	series(t, fams, "exogate_test_utf8", map[string]string{"v": "a\uFFFDb"})
	if v := series(t, fams, "exogate_test_total", nil).GetCounter().GetValue(); v != 3 {
		t.Errorf("unlabelled counter = %v, want 3", v)
	}
}

// Families come sorted by name, each with HELP then TYPE, and series in a
// stable order whatever the order they were made or written in.
func TestOrder(t *testing.T) {
	m := New("v")
	for _, a := range []string{"zeta", "alpha", "mu"} {
		m.Breaker(a, "api", 0, "", false)
	}
	m.Register(&testCollector{d: NewDesc(Gauge, "exogate_aaa", "First.", "k"),
		values: []float64{1, 2, 3}, labels: [][]string{{"c"}, {"a"}, {"b"}}})
	text := string(scrapeText(t, m))

	var names []string
	prev := ""
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "# HELP "):
			names = append(names, f[2])
			prev = "help"
		case strings.HasPrefix(line, "# TYPE "):
			if prev != "help" || f[2] != names[len(names)-1] {
				t.Errorf("TYPE line %q not right after its HELP", line)
			}
			prev = "type"
		default:
			prev = "sample"
		}
	}
	if !slices.IsSorted(names) || len(names) < 3 {
		t.Errorf("families not sorted: %v", names)
	}
	if names[0] != "exogate_aaa" {
		t.Errorf("first family %s", names[0])
	}
	for _, seq := range [][]string{
		{`exogate_aaa{k="a"} 2`, `exogate_aaa{k="b"} 3`, `exogate_aaa{k="c"} 1`},
		{`exogate_breaker_state{account="alpha"`, `exogate_breaker_state{account="mu"`, `exogate_breaker_state{account="zeta"`},
	} {
		at := -1
		for _, s := range seq {
			i := strings.Index(text, s)
			if i <= at {
				t.Errorf("%s out of order (at %d, previous at %d)", s, i, at)
			}
			at = i
		}
	}
}

func TestNil(t *testing.T) {
	var m *Metrics
	exercise(m)
	m.Register(&testCollector{d: NewDesc(Gauge, "exogate_x", "X.")})
	if body := scrapeText(t, m); len(body) != 0 {
		t.Errorf("nil Metrics served %q", body)
	}
}

func TestRegisterDuplicate(t *testing.T) {
	for _, c := range []Collector{
		&testCollector{d: NewDesc(Counter, "exogate_requests_total", "Again.")},
		&twoDescs{NewDesc(Gauge, "exogate_twice", "A."), NewDesc(Gauge, "exogate_twice", "B.")},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("registering %v did not panic", c.Describe()[0].name)
				}
			}()
			New("v").Register(c)
		}()
	}
}

type twoDescs [2]*Desc

func (d *twoDescs) Describe() []*Desc { return d[:] }
func (d *twoDescs) Collect(*Writer)   {}

func TestWiringPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"bad name":        func() { NewDesc(Gauge, "exogate-x", "X.") },
		"bad label":       func() { NewDesc(Gauge, "exogate_x", "X.", "a b") },
		"reserved label":  func() { NewDesc(Gauge, "exogate_x", "X.", "le") },
		"histogram type":  func() { NewDesc(histogram, "exogate_x", "X.") },
		"too few values":  func() { new(Writer).Write(NewDesc(Gauge, "exogate_x", "X.", "a", "b"), 1, "a") },
		"too many values": func() { new(Writer).Write(NewDesc(Gauge, "exogate_x", "X."), 1, "a") },
		"too many labels": func() { newCounterVec("exogate_x", "X.", "a", "b", "c", "d", "e", "f", "g") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// Recording into existing series allocates nothing: it is on every
// request's path.
func TestNoAllocs(t *testing.T) {
	m := New("v")
	r := Request{Account: "acme", Bucket: "sms", Method: "POST", Client: "crm", Status: 503, FromGateway: true,
		Duration: 30 * time.Millisecond, Admitted: true, Rejected: true, Waited: time.Millisecond,
		Injected: true, InjectFailed: true, ClientAuthRemoved: true}
	// AllocsPerRun runs f once before measuring, which makes the series.
	if n := testing.AllocsPerRun(1000, func() {
		m.Observe(r)
		m.Upstream("acme", "api", 429, 20*time.Millisecond)
		m.Breaker("acme", "api", 1, "half-open", true)
		m.Reload(true)
	}); n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
}

// BenchmarkObserve is a request's recording on the hot path: its request,
// its limiter, credentials and upstream series, all existing.
func BenchmarkObserve(b *testing.B) {
	m := New("v")
	r := Request{Account: "acme", Bucket: "sms", Method: "POST", Client: "crm", Status: 200,
		Duration: 30 * time.Millisecond, Admitted: true, Waited: time.Millisecond, Injected: true}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Observe(r)
			m.Upstream("acme", "api", 200, 20*time.Millisecond)
		}
	})
}

// Concurrent recording loses nothing, and scrapes may run meanwhile.
func TestConcurrent(t *testing.T) {
	m := New("v")
	const goroutines, each = 8, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				// Half the goroutines make a series of their own, racing to
				// make it with the others.
				account := "acme"
				if g%2 == 1 {
					account = "beta"
				}
				m.Observe(Request{Account: account, Bucket: "sms", Method: "GET", Status: 200, Duration: time.Millisecond})
				m.Upstream(account, "api", 200, time.Duration(i%3)*time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			scrapeText(t, m)
		}
	})
	wg.Wait()

	fams := scrape(t, m)
	for _, a := range []string{"acme", "beta"} {
		want := goroutines / 2 * each
		if v := series(t, fams, "exogate_requests_total", map[string]string{"account": a, "bucket": "sms", "method": "GET", "code": "200", "source": "upstream", "client": "anonymous"}).GetCounter().GetValue(); v != float64(want) {
			t.Errorf("%s: %v requests, want %d", a, v, want)
		}
		h := series(t, fams, "exogate_request_duration_seconds", map[string]string{"account": a, "bucket": "sms"}).GetHistogram()
		if h.GetSampleCount() != uint64(want) || math.Abs(h.GetSampleSum()-float64(want)*0.001) > 1e-6 {
			t.Errorf("%s: duration count %d sum %v, want %d and %v", a, h.GetSampleCount(), h.GetSampleSum(), want, float64(want)*0.001)
		}
		u := series(t, fams, "exogate_upstream_duration_seconds", map[string]string{"account": a, "host": "api"}).GetHistogram()
		if u.GetSampleCount() != uint64(want) {
			t.Errorf("%s: upstream count %d, want %d", a, u.GetSampleCount(), want)
		}
	}
}

// initialized is when this test binary set its package variables, a moment
// after the process started.
var initialized = time.Now()

// The runtime and process families hold live values.
func TestRuntimeAndProcess(t *testing.T) {
	m := New("v")
	v := func(fams map[string]*dto.MetricFamily, name string) float64 {
		return series(t, fams, name, nil).GetUntyped().GetValue()
	}
	before := v(scrape(t, m), "go_gc_duration_seconds_count")
	gcAfter := time.Now()
	runtime.GC()
	fams := scrape(t, m)
	if n := v(fams, "go_gc_duration_seconds_count"); n <= before {
		t.Errorf("go_gc_duration_seconds_count %v after %v and a GC", n, before)
	}
	if q := fams["go_gc_duration_seconds"].GetMetric(); len(q) != 5 {
		t.Errorf("go_gc_duration_seconds: %d quantiles, want 5", len(q))
	}
	// The GC just made is the last one (or a later one).
	if last := v(fams, "go_memstats_last_gc_time_seconds"); time.Unix(0, int64(last*1e9)).Before(gcAfter.Add(-time.Millisecond)) {
		t.Errorf("last GC at %v, before the one made at %v", last, gcAfter)
	}

	if runtime.GOOS != "linux" {
		return
	}
	g := func(name string) float64 { return v(fams, name) }
	if v := g("process_resident_memory_bytes"); v < 1<<20 {
		t.Errorf("process_resident_memory_bytes = %v", v)
	}
	if v := g("process_virtual_memory_bytes"); v < g("process_resident_memory_bytes") {
		t.Errorf("process_virtual_memory_bytes = %v", v)
	}
	if open, max := g("process_open_fds"), g("process_max_fds"); open < 3 || max < open {
		t.Errorf("process_open_fds = %v, process_max_fds = %v", open, max)
	}
	// VictoriaMetrics takes the start time when its package is initialized,
	// in whole seconds: before this package's variables, and not long before.
	if start := time.Unix(int64(g("process_start_time_seconds")), 0); start.After(initialized) || start.Before(initialized.Add(-time.Minute)) {
		t.Errorf("process_start_time_seconds = %v, package variables set at %v", start, initialized)
	}
	if v := g("process_cpu_seconds_total"); v < 0 || v > 3600 {
		t.Errorf("process_cpu_seconds_total = %v", v)
	}
}
