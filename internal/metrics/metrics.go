// Package metrics holds exogate's Prometheus metrics. Every label takes a
// bounded set of values: account is a configured SID or "unknown", bucket and
// family come from Exotel's domain, code is an HTTP status, source is
// "gateway" or "upstream". Metrics live in their own sets (there is no
// process-wide registry) and are served on the admin listener.
//
// The series are github.com/VictoriaMetrics/metrics counters, gauges and
// Prometheus-style histograms, and the go_* and process_* families are that
// library's. This package adds what it lacks: HELP texts (VictoriaMetrics
// writes a family's name only), families read at scrape time through a
// Collector, and finding a series by its label values without building its
// name, so that recording into an existing series allocates nothing.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const ns = "exogate_"

// UnknownAccount is the account label of requests for SIDs not configured.
const UnknownAccount = "unknown"

// Metrics is the gateway's metric set. A nil *Metrics records nothing, so
// callers need no checks. Safe for concurrent use.
type Metrics struct {
	requests         *counterVec
	requestDuration  *histogramVec
	upstreamDuration *histogramVec
	limiterWait      *histogramVec
	limiterAdmitted  *counterVec
	limiterRejected  *counterVec
	exotelResponses  *counterVec
	breakerState     *gaugeVec
	breakerChanges   *counterVec
	injected         *counterVec
	injectFailed     *counterVec
	authRemoved      *counterVec
	reloads          *counterVec

	mu         sync.Mutex
	collectors []Collector     // everything a scrape writes, in registration order
	names      map[string]bool // family names registered

	codes [600]atomic.Pointer[string] // status code -> its label, built once
}

// New makes the metric set, with build info.
func New(version string) *Metrics {
	m := &Metrics{names: map[string]bool{}}
	durations := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m.requests = newCounterVec(ns+"requests_total",
		"Requests answered, by account, bucket, method, status code, who made the answer (gateway or upstream) and calling client.",
		"account", "bucket", "method", "code", "source", "client")
	m.requestDuration = newHistogramVec(ns+"request_duration_seconds",
		"Time from request to the end of the answer, limiter wait included.", durations, "account", "bucket")
	m.upstreamDuration = newHistogramVec(ns+"upstream_duration_seconds",
		"Time Exotel took to answer (to its response headers).", durations, "account", "host")
	m.limiterWait = newHistogramVec(ns+"limiter_wait_seconds",
		"Time admitted requests waited in line for the rate limiter.", []float64{0, .01, .05, .1, .25, .5, 1, 2, 5}, "account", "bucket")
	m.limiterAdmitted = newCounterVec(ns+"limiter_admitted_total", "Requests the rate limiter let through.", "account", "bucket")
	m.limiterRejected = newCounterVec(ns+"limiter_rejected_total", "Requests the rate limiter turned away with 429.", "account", "bucket")
	m.exotelResponses = newCounterVec(ns+"exotel_responses_total", "Exotel's own 401 and 429 answers, by account.", "account", "code")
	m.breakerState = newGaugeVec(ns+"breaker_state",
		"Circuit breaker state per account and upstream host: 0 closed, 1 half-open, 2 open.", "account", "host")
	m.breakerChanges = newCounterVec(ns+"breaker_transitions_total", "Circuit breaker state changes, by the state entered.", "account", "host", "to")
	m.injected = newCounterVec(ns+"credentials_injected_total", "Requests sent upstream with the account's credentials.", "account")
	m.injectFailed = newCounterVec(ns+"credentials_failed_total", "Requests refused because the account had no credentials.", "account")
	m.authRemoved = newCounterVec(ns+"client_auth_removed_total",
		"Requests whose client-sent Authorization or Proxy-Authorization was removed.", "account")
	m.reloads = newCounterVec(ns+"config_reloads_total", "Configuration reloads, by result.", "result")
	build := newGaugeVec(ns+"build_info", "exogate's version and Go version; always 1.", "version", "goversion")
	build.set(labels{version, runtime.Version()}, 1)

	for _, c := range []Collector{m.requests, m.requestDuration, m.upstreamDuration, m.limiterWait, m.limiterAdmitted,
		m.limiterRejected, m.exotelResponses, m.breakerState, m.breakerChanges, m.injected, m.injectFailed,
		m.authRemoved, m.reloads, build} {
		m.Register(c)
	}
	return m
}

// Register adds a collector that reads state at scrape time (limiter
// pauses, credential ages). It panics on a duplicate family name, as a
// wiring bug.
func (m *Metrics) Register(c Collector) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	descs := c.Describe()
	for i, d := range descs {
		if m.names[d.name] {
			panic("metrics: duplicate family " + d.name)
		}
		for _, e := range descs[:i] {
			if e.name == d.name {
				panic("metrics: duplicate family " + d.name)
			}
		}
	}
	for _, d := range descs {
		m.names[d.name] = true
	}
	m.collectors = append(m.collectors, c)
}

// Handler serves the metrics in the Prometheus text format (0.0.4): the
// families registered, sorted by name, then the Go runtime's go_* and the
// process's process_* families. A nil *Metrics serves an empty scrape.
func (m *Metrics) Handler() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		serve(rw, m.gather, m != nil)
	})
}

// gather has every collector write its samples.
func (m *Metrics) gather(w *Writer) {
	if m == nil {
		return
	}
	m.mu.Lock()
	cs := m.collectors // Register only appends
	m.mu.Unlock()
	for _, c := range cs {
		c.Collect(w)
	}
}

// code returns a status code's label, built once per code.
func (m *Metrics) code(status int) string {
	if uint(status) >= uint(len(m.codes)) {
		return strconv.Itoa(status)
	}
	if p := m.codes[status].Load(); p != nil {
		return *p
	}
	s := strconv.Itoa(status)
	m.codes[status].Store(&s)
	return s
}

// Request records one answered request.
type Request struct {
	Account, Bucket, Method string // Account: a configured SID or UnknownAccount; Bucket may be ""
	Client                  string // a configured client id, or "" (anonymous)
	Status                  int
	FromGateway             bool // the gateway made the answer (X-Exogate-Error)
	Duration                time.Duration
	Admitted, Rejected      bool          // the limiter's verdict, if it was asked
	Waited                  time.Duration // time in the limiter's line, when admitted
	Injected, InjectFailed  bool          // credentials were set upstream / were missing
	ClientAuthRemoved       bool
}

// Observe records a request.
func (m *Metrics) Observe(r Request) {
	if m == nil {
		return
	}
	source := "upstream"
	if r.FromGateway {
		source = "gateway"
	}
	method := r.Method
	switch method {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE":
	default:
		method = "other"
	}
	client := r.Client
	if client == "" {
		client = "anonymous"
	}
	m.requests.inc(labels{r.Account, r.Bucket, method, m.code(r.Status), source, client})
	if r.Account == UnknownAccount || r.Bucket == "" {
		return
	}
	m.requestDuration.observe(labels{r.Account, r.Bucket}, r.Duration.Seconds())
	if r.Admitted {
		m.limiterAdmitted.inc(labels{r.Account, r.Bucket})
		m.limiterWait.observe(labels{r.Account, r.Bucket}, r.Waited.Seconds())
	}
	if r.Rejected {
		m.limiterRejected.inc(labels{r.Account, r.Bucket})
	}
	if r.Injected {
		m.injected.inc(labels{r.Account})
	}
	if r.InjectFailed {
		m.injectFailed.inc(labels{r.Account})
	}
	if r.ClientAuthRemoved {
		m.authRemoved.inc(labels{r.Account})
	}
}

// Upstream records one exchange with Exotel: how long it took to answer,
// and Exotel's own 401s and 429s.
func (m *Metrics) Upstream(account, host string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.upstreamDuration.observe(labels{account, host}, d.Seconds())
	if status == http.StatusUnauthorized || status == http.StatusTooManyRequests {
		m.exotelResponses.inc(labels{account, m.code(status)})
	}
}

// Breaker records a breaker's state (0 closed, 1 half-open, 2 open), and a
// transition when changed is true.
func (m *Metrics) Breaker(account, host string, state int, to string, changed bool) {
	if m == nil {
		return
	}
	m.breakerState.set(labels{account, host}, float64(state))
	if changed {
		m.breakerChanges.inc(labels{account, host, to})
	}
}

// Reload records a configuration reload.
func (m *Metrics) Reload(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.reloads.inc(labels{"success"})
	} else {
		m.reloads.inc(labels{"failure"})
	}
}
