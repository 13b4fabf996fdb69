// Package metrics holds exogate's Prometheus metrics. Every label takes a
// bounded set of values: account is a configured SID or "unknown", bucket and
// family come from Exotel's domain, code is an HTTP status, source is
// "gateway" or "upstream". Metrics live in their own registry (never the
// process-wide default) and are served on the admin listener.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const ns = "exogate"

// UnknownAccount is the account label of requests for SIDs not configured.
const UnknownAccount = "unknown"

// Metrics is the gateway's metric set. A nil *Metrics records nothing, so
// callers need no checks. Safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests         *prometheus.CounterVec
	requestDuration  *prometheus.HistogramVec
	upstreamDuration *prometheus.HistogramVec
	limiterWait      *prometheus.HistogramVec
	limiterAdmitted  *prometheus.CounterVec
	limiterRejected  *prometheus.CounterVec
	exotelResponses  *prometheus.CounterVec
	breakerState     *prometheus.GaugeVec
	breakerChanges   *prometheus.CounterVec
	injected         *prometheus.CounterVec
	injectFailed     *prometheus.CounterVec
	authRemoved      *prometheus.CounterVec
	reloads          *prometheus.CounterVec

	codes sync.Map // int -> string, so a status code's label is built once
}

// New makes the metric set, with build info and the Go runtime and process
// collectors.
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	durations := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "requests_total",
		Help: "Requests answered, by account, bucket, method, status code, who made the answer (gateway or upstream) and calling client."},
		[]string{"account", "bucket", "method", "code", "source", "client"})
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "request_duration_seconds",
		Help: "Time from request to the end of the answer, limiter wait included.", Buckets: durations},
		[]string{"account", "bucket"})
	m.upstreamDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "upstream_duration_seconds",
		Help: "Time Exotel took to answer (to its response headers).", Buckets: durations},
		[]string{"account", "host"})
	m.limiterWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "limiter_wait_seconds",
		Help: "Time admitted requests waited in line for the rate limiter.", Buckets: []float64{0, .01, .05, .1, .25, .5, 1, 2, 5}},
		[]string{"account", "bucket"})
	m.limiterAdmitted = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "limiter_admitted_total",
		Help: "Requests the rate limiter let through."}, []string{"account", "bucket"})
	m.limiterRejected = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "limiter_rejected_total",
		Help: "Requests the rate limiter turned away with 429."}, []string{"account", "bucket"})
	m.exotelResponses = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "exotel_responses_total",
		Help: "Exotel's own 401 and 429 answers, by account."}, []string{"account", "code"})
	m.breakerState = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "breaker_state",
		Help: "Circuit breaker state per account and upstream host: 0 closed, 1 half-open, 2 open."}, []string{"account", "host"})
	m.breakerChanges = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "breaker_transitions_total",
		Help: "Circuit breaker state changes, by the state entered."}, []string{"account", "host", "to"})
	m.injected = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "credentials_injected_total",
		Help: "Requests sent upstream with the account's credentials."}, []string{"account"})
	m.injectFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "credentials_failed_total",
		Help: "Requests refused because the account had no credentials."}, []string{"account"})
	m.authRemoved = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "client_auth_removed_total",
		Help: "Requests whose client-sent Authorization or Proxy-Authorization was removed."}, []string{"account"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "config_reloads_total",
		Help: "Configuration reloads, by result."}, []string{"result"})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
		Help: "exogate's version and Go version; always 1."}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)

	m.reg.MustRegister(m.requests, m.requestDuration, m.upstreamDuration, m.limiterWait, m.limiterAdmitted,
		m.limiterRejected, m.exotelResponses, m.breakerState, m.breakerChanges, m.injected, m.injectFailed,
		m.authRemoved, m.reloads, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds a collector that reads state at scrape time (limiter
// pauses, credential ages). It panics on a duplicate, as a wiring bug.
func (m *Metrics) Register(c prometheus.Collector) {
	if m != nil {
		m.reg.MustRegister(c)
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *Metrics) code(status int) string {
	if v, ok := m.codes.Load(status); ok {
		return v.(string)
	}
	s := strconv.Itoa(status)
	m.codes.Store(status, s)
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
	m.requests.WithLabelValues(r.Account, r.Bucket, method, m.code(r.Status), source, client).Inc()
	if r.Account == UnknownAccount || r.Bucket == "" {
		return
	}
	m.requestDuration.WithLabelValues(r.Account, r.Bucket).Observe(r.Duration.Seconds())
	if r.Admitted {
		m.limiterAdmitted.WithLabelValues(r.Account, r.Bucket).Inc()
		m.limiterWait.WithLabelValues(r.Account, r.Bucket).Observe(r.Waited.Seconds())
	}
	if r.Rejected {
		m.limiterRejected.WithLabelValues(r.Account, r.Bucket).Inc()
	}
	if r.Injected {
		m.injected.WithLabelValues(r.Account).Inc()
	}
	if r.InjectFailed {
		m.injectFailed.WithLabelValues(r.Account).Inc()
	}
	if r.ClientAuthRemoved {
		m.authRemoved.WithLabelValues(r.Account).Inc()
	}
}

// Upstream records one exchange with Exotel: how long it took to answer,
// and Exotel's own 401s and 429s.
func (m *Metrics) Upstream(account, host string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.upstreamDuration.WithLabelValues(account, host).Observe(d.Seconds())
	if status == http.StatusUnauthorized || status == http.StatusTooManyRequests {
		m.exotelResponses.WithLabelValues(account, m.code(status)).Inc()
	}
}

// Breaker records a breaker's state (0 closed, 1 half-open, 2 open), and a
// transition when changed is true.
func (m *Metrics) Breaker(account, host string, state int, to string, changed bool) {
	if m == nil {
		return
	}
	m.breakerState.WithLabelValues(account, host).Set(float64(state))
	if changed {
		m.breakerChanges.WithLabelValues(account, host, to).Inc()
	}
}

// Reload records a configuration reload.
func (m *Metrics) Reload(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.reloads.WithLabelValues("success").Inc()
	} else {
		m.reloads.WithLabelValues("failure").Inc()
	}
}
