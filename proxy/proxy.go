// Package proxy is exogate's HTTP handler: it classifies each request by its
// Exotel path, finds the account's regional upstream, waits for the account's
// rate limit, passes the per-account-and-host circuit breaker, strips whatever
// credentials the caller sent, has the credentials store inject the account's
// own, and streams the exchange through httputil.ReverseProxy.
//
// Every answer the gateway makes itself is in Exotel's own error shape (see
// writeError) and carries an X-Exogate-Error header naming its kind; Exotel's
// own answers pass through untouched. Nothing is sent upstream for a request
// the gateway refuses.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"

	"github.com/exogate/exogate/internal/callers"
	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/internal/logx"
	"github.com/exogate/exogate/internal/metrics"
)

// Authorizer writes an account's credentials onto an outgoing request's
// header. It is implemented by *credentials.Store.
type Authorizer interface {
	// Authorize sets the Authorization header for account, replacing any,
	// and returns an opaque label of the credential version it used.
	Authorize(h http.Header, account string) (version string, err error)
	// Ready reports whether every account has credentials.
	Ready() bool
}

// Reauthorizer is implemented by an Authorizer whose credentials can change
// (rotated in Vault or on disk). When Exotel answers 401, the handler asks it
// for other credentials and, if it sets some, replays the request once: a 401
// means Exotel acted on nothing, so even a POST is safe to send again.
type Reauthorizer interface {
	Reauthorize(ctx context.Context, h http.Header, account, rejected string) bool
}

// Acceptor is implemented by an Authorizer that wants to know which
// credentials Exotel accepted: after a rotation, whether Exotel has taken
// the new token or still takes only the previous one. Accepted is called
// with the Authorization header of every attempt Exotel answered below
// 400, so it must be cheap.
type Acceptor interface {
	Accepted(account string, h http.Header)
}

// Limiter admits a request for an account's bucket, waiting in line when it
// must. A rejection's error implements RetryAfter() time.Duration. It is
// implemented by *ratelimit.Memory and *ratelimit.Redis.
type Limiter interface {
	Admit(ctx context.Context, account, bucket string) (waited time.Duration, err error)
}

// Pauser is implemented by a Limiter that can hold back an account's bucket
// after Exotel itself answered 429 (for the whole fleet, with a shared
// backend).
type Pauser interface {
	// Pause holds the bucket back for d (d <= 0: an exponential backoff)
	// and returns the pause applied.
	Pause(account, bucket string, d time.Duration) time.Duration
	// Succeeded resets the backoff after Exotel accepted a request.
	Succeeded(account, bucket string)
}

// Identifier tells who is calling. It is implemented by *callers.Callers.
type Identifier interface {
	Identify(r *http.Request) (*callers.Client, error)
}

// ClientLimiter holds each client to its own share of an account's
// buckets, before the account's own limit.
type ClientLimiter interface {
	Admit(ctx context.Context, client, account, bucket string) (waited time.Duration, err error)
}

// Account is one account the gateway serves and its two upstream base URLs.
type Account struct {
	SID string   // account SID, matched case-insensitively
	API *url.URL // base URL of the region's api host, e.g. https://api.exotel.com
	CCM *url.URL // base URL of the region's ccm host, e.g. https://ccm-api.exotel.com
}

// Config configures a Handler. A zero field takes the default given beside it.
type Config struct {
	Accounts   []Account
	Authorizer Authorizer // required
	Limiter    Limiter    // nil: no rate limiting
	// Transport sends requests upstream; nil means http.DefaultTransport. It
	// must not retry requests (http.Transport does not retry a request that is
	// not replayable, and the handler makes sure none is).
	Transport http.RoundTripper
	Breaker   BreakerSettings
	// RetryWait is the longest pause after Exotel's own 429 that a request
	// waits out before it is sent once more (default 2s; negative: never).
	// A 429 means Exotel acted on nothing, so the replay is safe.
	RetryWait time.Duration
	// MaxBody is the largest request body accepted, in bytes (default 1 MiB).
	MaxBody int64
	// Logger receives one access line per request (default: no logging).
	Logger zerolog.Logger
	// Metrics records requests, upstream timings and breaker states (nil:
	// none).
	Metrics *metrics.Metrics
	// Now is the clock (default time.Now). The handler reads every instant
	// from it: durations, Retry-After dates, when a breaker opened, the
	// deadline of a wait in line (which the limiters compare with their own
	// clock) and the write deadline. Another clock must keep the wall
	// clock's pace, as testing/synctest's does: the context and connection
	// deadlines set from it expire by the wall clock.
	Now func() time.Time
	// Callers identifies callers and holds their rights (nil: every caller
	// is anonymous and may do anything).
	Callers Identifier
	// ClientLimiter enforces per-client caps (nil: none).
	ClientLimiter ClientLimiter
	// MaxWait bounds a request's whole time in line when it queues twice,
	// for its client's cap and then for the account's limit (0: each
	// limiter's own bound applies to its own line).
	MaxWait time.Duration
	// MaxInFlight bounds the requests served at once, those waiting in the
	// limiter's line included; past it a request is answered 503 overloaded
	// at once (0: 1024; negative: no bound).
	MaxInFlight int
	// WriteTimeout bounds the time to send the answer, counted from when it
	// starts (Exotel's status line, or the gateway's own error), so that a
	// caller that stops reading cannot hold the request forever, while one
	// waiting in the limiter's line or for Exotel is never cut (0: no
	// bound).
	WriteTimeout time.Duration
	// Callbacks fills in exogate://ROUTE callback URLs in the bodies of
	// calls.connect, sms.send and sms.bulksend (nil: such a URL is refused,
	// as no webhook route exists).
	Callbacks CallbackResolver
	// Idempotency keeps the outcomes of POSTs sent with an
	// Idempotency-Key (nil: such keys are dropped and do nothing).
	Idempotency *Idempotency
	// Previous, on a configuration reload, is the handler being replaced:
	// an account whose upstream hosts and breaker settings are unchanged
	// keeps its breakers (open stays open).
	Previous *Handler
}

// Handler is the gateway's http.Handler. Safe for concurrent use.
type Handler struct {
	accounts   map[string]*account
	limiter    Limiter
	pauser     Pauser // nil: Exotel's 429s pass straight through
	retryWait  time.Duration
	authorizer Authorizer
	reauth     Reauthorizer // nil: Exotel's 401s pass straight through
	acceptor   Acceptor     // nil: nobody is told which credentials worked
	maxBody    int64
	log        zerolog.Logger
	now        func() time.Time
	draining   atomic.Bool
	idPrefix   string
	idSeq      atomic.Uint64
	bufs       bufferPool
	stdlog     *log.Logger // ReverseProxy's own messages, into the structured log
	metrics    *metrics.Metrics
	callers    Identifier
	clientLim  ClientLimiter
	maxWait    time.Duration
	maxFlight  int64         // 0: no bound
	inFlight   *atomic.Int64 // shared with the handler this one replaced
	writeLimit time.Duration
	callbacks  CallbackResolver
	idem       *Idempotency // MaxAnswer set
}

type account struct {
	sid       string
	upstreams [2]*upstream // indexed by exotel.Host
}

// upstream is one account's host (api or ccm) with its breaker, and a
// ReverseProxy per rate-limit bucket, so that the transport knows the bucket
// of every request without a per-request allocation.
type upstream struct {
	target  *url.URL
	breaker *breaker
	proxies [exotel.NumBuckets]*httputil.ReverseProxy
}

// DefaultMaxInFlight is Config.MaxInFlight's default.
const DefaultMaxInFlight = 1024

// DefaultMaxBody is Config.MaxBody's default: Exotel's requests are forms
// of a few fields.
const DefaultMaxBody = 1 << 20

// New makes a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Authorizer == nil {
		return nil, errors.New("proxy: Config.Authorizer is required")
	}
	h := &Handler{
		accounts:   make(map[string]*account, len(cfg.Accounts)),
		limiter:    cfg.Limiter,
		authorizer: cfg.Authorizer,
		maxBody:    cfg.MaxBody,
		log:        cfg.Logger,
		now:        cfg.Now,
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	h.stdlog = logx.StdLogger(cfg.Logger, "proxy")
	h.metrics = cfg.Metrics
	h.callers, h.clientLim, h.maxWait = cfg.Callers, cfg.ClientLimiter, cfg.MaxWait
	h.writeLimit, h.callbacks = cfg.WriteTimeout, cfg.Callbacks
	if cfg.Idempotency != nil {
		if cfg.Idempotency.Keys == nil {
			return nil, errors.New("proxy: Config.Idempotency.Keys is required")
		}
		idem := *cfg.Idempotency
		if idem.MaxAnswer <= 0 {
			idem.MaxAnswer = defaultMaxIdempotencyAnswer
		}
		h.idem = &idem
	}
	h.inFlight = new(atomic.Int64)
	if cfg.Previous != nil {
		h.inFlight = cfg.Previous.inFlight
	}
	switch {
	case cfg.MaxInFlight == 0:
		h.maxFlight = DefaultMaxInFlight
	case cfg.MaxInFlight > 0:
		h.maxFlight = int64(cfg.MaxInFlight)
	}
	h.reauth, _ = cfg.Authorizer.(Reauthorizer)
	h.acceptor, _ = cfg.Authorizer.(Acceptor)
	h.pauser, _ = cfg.Limiter.(Pauser)
	h.retryWait = cfg.RetryWait
	if h.retryWait == 0 {
		h.retryWait = 2 * time.Second
	}
	if h.now == nil {
		h.now = time.Now
	}
	transport := cfg.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	h.idPrefix = hex.EncodeToString(rnd[:]) + "-"

	for _, a := range cfg.Accounts {
		sid := strings.ToLower(a.SID)
		if _, dup := h.accounts[sid]; dup {
			return nil, fmt.Errorf("proxy: account %q configured twice", a.SID)
		}
		acct := &account{sid: sid}
		for host, target := range map[exotel.Host]*url.URL{exotel.HostAPI: a.API, exotel.HostCCM: a.CCM} {
			if target == nil || target.Host == "" || (target.Scheme != "https" && target.Scheme != "http") {
				return nil, fmt.Errorf("proxy: account %q: %s upstream must be an absolute http(s) URL", a.SID, host)
			}
			var keep *breaker
			if cfg.Previous != nil {
				if old, ok := cfg.Previous.accounts[sid]; ok && old.upstreams[host].target.String() == target.String() &&
					old.upstreams[host].breaker.settings == cfg.Breaker.comparable() {
					keep = old.upstreams[host].breaker
				}
			}
			acct.upstreams[host] = h.newUpstream(sid, host, target, cfg.Breaker, transport, keep)
		}
		h.accounts[sid] = acct
	}
	return h, nil
}

func (h *Handler) newUpstream(sid string, host exotel.Host, target *url.URL, bs BreakerSettings, next http.RoundTripper, keep *breaker) *upstream {
	up := &upstream{target: target, breaker: keep}
	hostLabel := host.String()
	onChange := bs.OnStateChange
	bs.OnStateChange = func(name string, from, to gobreaker.State) {
		h.metrics.Breaker(sid, hostLabel, int(to), to.String(), true)
		h.log.Warn().Str("account", sid).Str("host", target.Host).Str("from", from.String()).Str("to", to.String()).Msg("circuit breaker changed state")
		if onChange != nil {
			onChange(name, from, to)
		}
	}
	if up.breaker == nil {
		h.metrics.Breaker(sid, hostLabel, int(gobreaker.StateClosed), "", false)
		up.breaker = newBreaker(sid+"@"+target.Host, bs, h.now)
	}
	for _, b := range exotel.Buckets() {
		up.proxies[b] = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				rewrite(pr, target)
				h.authorize(pr, sid)
			},
			Transport: &upstreamTransport{
				breaker: up.breaker,
				replayer: replayer{
					account:   sid,
					bucket:    b.String(),
					host:      hostLabel,
					metrics:   h.metrics,
					reauth:    h.reauth,
					acceptor:  h.acceptor,
					limiter:   h.limiter,
					pauser:    h.pauser,
					retryWait: h.retryWait,
					next:      next,
					now:       h.now,
				},
			},
			BufferPool:   &h.bufs,
			ErrorHandler: h.proxyError,
			ErrorLog:     h.stdlog,
			// Exotel's answers stream back as they arrive (listings can be long).
			FlushInterval: 0,
		}
		if h.callbacks != nil {
			// Only a gateway with webhook routes reads placed calls' Sids.
			up.proxies[b].ModifyResponse = h.expectCallbacks
		}
	}
	return up
}

// rewrite points the outgoing request at the upstream, keeping the path and
// query byte for byte, and removes everything the caller should not pass on.
// Rewrite mode has already dropped hop-by-hop and X-Forwarded-* headers.
func rewrite(pr *httputil.ProxyRequest, target *url.URL) {
	out := pr.Out
	out.URL.Scheme = target.Scheme
	out.URL.Host = target.Host
	out.URL.User = nil
	// The exact bytes of the request line's path: Opaque is sent as is, so a
	// "//" or an unusual escape reaches Exotel exactly as the client wrote it.
	// Classify has rejected paths that start with "//".
	out.URL.Opaque = rawPath(pr.In.RequestURI)
	out.URL.RawPath = ""
	out.Host = target.Host
	// Only the headers Exotel's API uses go upstream (allowlist): whatever
	// auth the caller sent, idempotency keys (with which Go's transport would
	// treat a POST as replayable, golang/go#19943), the caller's address and
	// every override header (X-HTTP-Method-Override, X-Original-URL, ...)
	// stay here. authorize then sets the account's own Authorization.
	for k, v := range out.Header {
		if !forwardHeader(k, v) {
			delete(out.Header, k)
		}
	}
	if ex := exchangeOf(pr.In.Context()); ex != nil && ex.keyed != nil {
		// A kept answer is replayed to retries that may not accept the
		// encoding this caller asked for: the transport asks for gzip
		// itself and the answer is kept, and passed on, decoded.
		out.Header.Del("Accept-Encoding")
	}
}

// authorize has the Authorizer write the account's credentials on the
// outgoing request, which rewrite has stripped of the caller's, and notes
// on the exchange the version it used (told to the Reauthorizer after a
// 401) or why it could set none (the transport then refuses the request).
// The outgoing request is the ReverseProxy's own copy, made for this one
// request, so the secret is on no other layer's header.
func (h *Handler) authorize(pr *httputil.ProxyRequest, sid string) {
	ex := exchangeOf(pr.In.Context())
	if ex == nil {
		return // not the handler's request: the transport refuses it
	}
	ex.credVersion, ex.credErr = h.authorizer.Authorize(pr.Out.Header, sid)
}

// upstreamHeaders are the request headers forwarded to Exotel, in
// canonical form. Content-Length travels as the request's length, Host as
// the upstream's, Authorization is the account's own, and hop-by-hop
// headers never pass a proxy.
var upstreamHeaders = map[string]bool{
	"Accept":            true,
	"Accept-Charset":    true,
	"Accept-Encoding":   true,
	"Accept-Language":   true,
	"Content-Type":      true,
	"User-Agent":        true,
	"X-Request-Id":      true,
	"Traceparent":       true,
	"Tracestate":        true,
	"If-None-Match":     true,
	"If-Modified-Since": true,
}

// forwardHeader reports whether the header k with values v goes upstream.
func forwardHeader(k string, v []string) bool {
	if !upstreamHeaders[k] {
		return false
	}
	if k == "X-Request-Id" {
		// The caller's request id, for correlation, when it is one short
		// token: it is the caller's, not a channel to Exotel.
		return len(v) == 1 && isToken(v[0], 128)
	}
	return true
}

// isToken reports whether s is 1..max visible ASCII characters.
func isToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// rawPath returns the request target up to the query.
func rawPath(requestURI string) string {
	if i := strings.IndexByte(requestURI, '?'); i >= 0 {
		return requestURI[:i]
	}
	return requestURI
}

// SetDraining marks the gateway as shutting down: /readyz answers 503 from
// then on, while requests keep being served.
func (h *Handler) SetDraining() { h.draining.Store(true) }

// Draining reports whether SetDraining was called.
func (h *Handler) Draining() bool { return h.draining.Load() }

// Ready reports whether the gateway should receive traffic (Readiness).
func (h *Handler) Ready() bool {
	ready, _ := h.Readiness()
	return ready
}

// BreakerState returns the state of the breaker of an account and host.
func (h *Handler) BreakerState(sid string, host exotel.Host) (gobreaker.State, bool) {
	a, ok := h.accounts[strings.ToLower(sid)]
	if !ok {
		return 0, false
	}
	return a.upstreams[host].breaker.State(), true
}

// exchange is the per-request state: the ResponseWriter the proxy writes to,
// which records what the access log needs, and what the request's trip
// upstream needs (its body, its credentials' version), which the
// ReverseProxy's Rewrite, transport and ErrorHandler find in the request's
// context (exchangeOf).
type exchange struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	kind        string
	cause       error // the transport error behind a 502/504, for the log
	health      bool
	route       exotel.Route
	method      string
	requestID   string
	waited      time.Duration
	admitted    bool   // the limiter let it through
	client      string // the caller's client id, "" when anonymous
	clientAuth  bool   // the caller sent Authorization or Proxy-Authorization
	closeConn   bool   // answer with Connection: close
	writeLimit  time.Duration
	now         func() time.Time // the handler's clock
	up          *upstream
	body        limitedBody // what the request's body is read through
	credVersion string      // the credentials authorize set upstream
	credErr     error       // why authorize could set none
	expect      []string    // webhook routes a placed call's callbacks go to
	keyed       *keyed      // an Idempotency-Key reserved for this request
	idem        string      // what the idempotency checks did, for the log
	written     atomic.Bool // the whole request reached Exotel
	lost        atomic.Bool // the last attempt that reached Exotel got no answer
	// upstreamStatus is the status of Exotel's answer (after any replay),
	// 0 while there is none. The transport sets it in the handler's
	// goroutine.
	upstreamStatus int
	complete       bool // the ReverseProxy returned: the answer was sent whole
	idBuf          [32]byte
}

// OperatorClient is the client id in the access line of a request the
// gateway made itself (AsOperator).
const OperatorClient = "exogate"

type operatorKey struct{}

// AsOperator marks a request the gateway makes itself, such as a webhook
// route's check against Exotel: no caller's identity or rights apply to
// it; the limiter, breaker, credentials and transport of live traffic do.
// Only a context made in the process carries the mark: no request from
// the network can.
func AsOperator(ctx context.Context) context.Context {
	return context.WithValue(ctx, operatorKey{}, true)
}

// exchangeKey is the context key of the request's *exchange.
type exchangeKey struct{}

// withExchange returns ctx carrying ex. The handler puts the exchange in the
// context of the request it hands the ReverseProxy: that is how Rewrite,
// the transport and the ErrorHandler, which the ReverseProxy shares among
// requests, reach the request's own state (its body, its credentials).
func withExchange(ctx context.Context, ex *exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, ex)
}

// exchangeOf returns the exchange in ctx, or nil if there is none.
func exchangeOf(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

func (e *exchange) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		// 100 Continue, 103 Early Hints: never the final status, and not
		// passed on (Expect is not forwarded, and an early hint means
		// nothing to an API client); an upstream failure after one is
		// still answered as an error.
		return
	}
	if !e.wroteHeader {
		e.final(code)
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *exchange) Write(p []byte) (int, error) {
	if !e.wroteHeader {
		e.final(http.StatusOK)
	}
	if e.keyed != nil {
		e.keyed.keep(p)
	}
	return e.ResponseWriter.Write(p)
}

// final records the answer's status as it starts. The gateway's own
// headers are set again (httputil.ReverseProxy clears the header map after
// an upstream 1xx), and the time to write the answer starts now: the wait
// in line and for Exotel is bounded elsewhere, a caller that stops reading
// is not.
func (e *exchange) final(code int) {
	e.status, e.wroteHeader = code, true
	h := e.Header()
	if e.keyed != nil {
		e.keyed.ctype = h.Get("Content-Type")
	}
	h["X-Request-Id"] = []string{e.requestID}
	if e.closeConn {
		h.Set("Connection", "close")
	}
	if e.writeLimit > 0 {
		_ = http.NewResponseController(e.ResponseWriter).SetWriteDeadline(e.now().Add(e.writeLimit))
	}
}

// Unwrap lets http.ResponseController reach the connection's writer (for
// flushing streamed answers).
func (e *exchange) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	// Not pooled: after the handler returns, an upstream transport may
	// still be reading the request body it was handed (net/http's writes it
	// from a goroutine of its own), and nothing it can touch may be reused.
	ex := &exchange{ResponseWriter: w, method: r.Method, writeLimit: h.writeLimit, now: h.now}
	ex.requestID = h.newRequestID(ex) // set on the answer by exchange.final
	defer func() {
		if p := recover(); p != nil {
			// ReverseProxy aborts the response with http.ErrAbortHandler when
			// the upstream's body breaks mid-way: log the line, then let
			// net/http close the connection.
			if ex.kind == "" {
				ex.kind = KindUpstreamUnreachable
			}
			h.accessLog(ex, r, start)
			panic(p)
		}
		h.accessLog(ex, r, start)
	}()

	h.serve(ex, r)
}

// serve takes the request through its steps: the checks that need no
// route (the connection, the request target, health checks), then
// classify, the in-flight bound, admit and the body, and hands it to the
// upstream's ReverseProxy. The first step that fails answers it.
func (h *Handler) serve(ex *exchange, r *http.Request) {
	raw := rawPath(r.RequestURI)
	if h.screen(ex, r, raw) {
		return
	}
	if err := h.classify(ex, r, raw); err != nil {
		h.fail(ex, ex.route.Shape, err)
		return
	}
	if !h.enter() {
		h.fail(ex, ex.route.Shape, errOverloaded)
		return
	}
	defer h.leave()
	defer h.settle(ex, r)
	answered, err := h.admit(ex, r)
	if answered {
		return
	}
	if err == nil {
		err = h.wrapBody(ex, r)
	}
	if err != nil {
		h.fail(ex, ex.route.Shape, err)
		return
	}
	ex.up.proxies[ex.route.Bucket].ServeHTTP(ex, r.WithContext(withExchange(r.Context(), ex)))
	ex.complete = true
}

// screen answers what is answered before the path is classified: CONNECT,
// a target that is not a path, the health checks, and a connection past
// the listener's bound. It reports whether it answered.
func (h *Handler) screen(ex *exchange, r *http.Request, raw string) bool {
	if len(r.TransferEncoding) > 0 {
		// A chunked request may have come with a Content-Length too, which
		// net/http drops: bytes a front proxy counted as this body would be
		// served here as a second request (smuggling). RFC 9112 §6.3: close
		// the connection after answering it.
		ex.closeConn = true
	}
	over := overConnections(r.Context())
	if over {
		// A connection past the listener's bound gets one answer, then is
		// closed: a 503 overloaded, or a health check's own answer.
		ex.closeConn = true
	}
	switch {
	case r.Method == http.MethodConnect:
		h.fail(ex, exotel.ShapeOf(raw), errConnect)
	case !strings.HasPrefix(r.RequestURI, "/"):
		// Absolute-form ("GET http://host/..."), authority-form or "*":
		// exogate only ever talks to Exotel's hosts.
		h.fail(ex, exotel.ShapeJSON, errAbsoluteURI)
	case raw == "/healthz" || raw == "/readyz":
		ex.health = true
		h.health(ex, r, raw)
	case over:
		h.fail(ex, exotel.ShapeOf(raw), errOverloaded)
	default:
		return false
	}
	return true
}

// classify finds the request's route (API family, host, bucket, account)
// from its method and path.
func (h *Handler) classify(ex *exchange, r *http.Request, raw string) error {
	_, a1 := r.Header["Authorization"]
	_, a2 := r.Header["Proxy-Authorization"]
	ex.clientAuth = a1 || a2
	route, err := exotel.Classify(r.Method, raw)
	ex.route = route
	return err
}

// enter counts the request in flight, or reports false if the bound is
// reached; leave undoes an enter that succeeded.
func (h *Handler) enter() bool {
	if h.maxFlight <= 0 {
		return true
	}
	if h.inFlight.Add(1) > h.maxFlight {
		h.inFlight.Add(-1)
		return false
	}
	return true
}

func (h *Handler) leave() {
	if h.maxFlight > 0 {
		h.inFlight.Add(-1)
	}
}

// admit lets the request through to its upstream, set in ex.up: the caller
// and its rights, the account, the announced body size, the idempotency
// key, the breaker, then the limits. It reports answered when the
// idempotency checks answered the request (a repeat's kept outcome).
func (h *Handler) admit(ex *exchange, r *http.Request) (answered bool, err error) {
	if err := h.identify(ex, r); err != nil {
		return false, err
	}
	acct, ok := h.accounts[ex.route.Account]
	if !ok {
		return false, errUnknownAccount
	}
	ex.up = acct.upstreams[ex.route.Host]
	if r.ContentLength > h.maxBody {
		return false, errBodyTooLarge
	}
	// Before the breaker and the line: a repeat is answered from what was
	// kept, whatever the state of Exotel, and costs no token.
	if answered, err := h.reserve(ex, r); answered || err != nil {
		return answered, err
	}
	// An open breaker answers at once, without queueing for the limiter
	// (the transport's Allow is the admission that counts).
	if ex.up.breaker.State() == gobreaker.StateOpen {
		return false, ex.up.breaker.refusal()
	}
	return false, h.wait(ex, r, acct.sid)
}

// identify tells who is calling and whether it may make this request.
func (h *Handler) identify(ex *exchange, r *http.Request) error {
	if h.callers == nil {
		return nil
	}
	if r.Context().Value(operatorKey{}) != nil {
		ex.client = OperatorClient
		return nil
	}
	client, err := h.callers.Identify(r)
	if err != nil {
		return err
	}
	if client != nil {
		ex.client = client.ID
	}
	// Rights before existence: a caller learns nothing of accounts it may
	// not use.
	if !client.Allowed(ex.route, r.Method) {
		return errForbidden
	}
	return nil
}

// wait takes the request through its client's cap, then the account's
// limit, waiting in line where it must.
func (h *Handler) wait(ex *exchange, r *http.Request, sid string) error {
	ctx, bucket := r.Context(), ex.route.Bucket.String()
	if h.clientLim != nil && ex.client != "" {
		if h.maxWait > 0 {
			// One bound for both lines: what the client's cap took is gone
			// from the account's (the limiters refuse a turn past the
			// deadline at once, with Retry-After, reading it against their
			// clock, which is the handler's).
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, h.now().Add(h.maxWait))
			defer cancel()
		}
		waited, err := h.clientLim.Admit(ctx, ex.client, sid, bucket)
		ex.waited += waited
		if err != nil {
			return err
		}
	}
	if h.limiter == nil {
		return nil
	}
	waited, err := h.limiter.Admit(ctx, sid, bucket)
	ex.waited += waited
	if err != nil && ctx != r.Context() && errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
		// The shared bound ran out at the account's line: a rate limit,
		// not an upstream timeout.
		return waitExhausted{}
	}
	if err != nil {
		return err
	}
	ex.admitted = true
	return nil
}

// wrapBody puts the request's body behind ex.body, which bounds it and
// keeps it for a replay. The body is read only now that the request is
// going upstream: a request refused before cost no more than its header.
func (h *Handler) wrapBody(ex *exchange, r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	kind := callbackKind(ex.route.Operation)
	switch {
	case ex.body.preloaded:
		// Read whole already, to fingerprint it for its idempotency key.
	case r.ContentLength >= 0 && kind == "":
		ex.body.rc, ex.body.left, ex.body.record = r.Body, h.maxBody, h.reauth != nil || h.pauser != nil
		r.Body = &ex.body
		return nil
	default:
		// A chunked body of unknown length is read whole (up to MaxBody)
		// before anything is sent, so an oversized one never reaches
		// Exotel in part, and it is forwarded with its length. So is the
		// body of a request that may name an exogate:// callback, to fill
		// it in.
		if err := ex.body.preload(r.Body, h.maxBody); err != nil {
			return err
		}
	}
	if err := h.fillCallbacks(ex, r, kind); err != nil {
		return err
	}
	r.ContentLength, r.TransferEncoding = int64(len(ex.body.rec)), nil
	r.Body = &ex.body
	if r.ContentLength == 0 {
		r.Body = http.NoBody
	}
	return nil
}

// waitExhausted is a request's whole time in line used up before the
// account's limiter could admit it.
type waitExhausted struct{}

func (waitExhausted) Error() string             { return "proxy: time in line used up" }
func (waitExhausted) RetryAfter() time.Duration { return time.Second }

// fail answers the request with err in the Exotel shape and records the kind.
func (h *Handler) fail(ex *exchange, shape exotel.Shape, err error) {
	if errors.Is(err, errBodyTooLarge) {
		err = bodyTooLarge{limit: h.maxBody}
	}
	ex.kind = writeError(ex, shape, ex.method, ex.requestID, err)
	if ex.kind == KindClientClosed {
		ex.status = 499
	}
}

// proxyError is the ReverseProxy's ErrorHandler: a transport error, a breaker
// refusal, missing credentials, or a body that grew past MaxBody.
func (h *Handler) proxyError(_ http.ResponseWriter, r *http.Request, err error) {
	ex := exchangeOf(r.Context())
	if ex.body.exceeded.Load() {
		err = errBodyTooLarge
	}
	ex.cause = err
	var unknown *errOutcomeUnknown
	if ex.keyed != nil && errors.As(err, &unknown) {
		// Tell the caller what the key's retries will be told.
		err = &errKeptUnknown{status: toResponse(err).status, message: unknownMessage(ex.route.Operation, ex.expect)}
	}
	if ex.wroteHeader {
		// The upstream's answer was already under way; nothing sane can be
		// added to it. ReverseProxy aborts the connection.
		ex.kind = KindUpstreamUnreachable
		return
	}
	h.fail(ex, ex.route.Shape, err)
}

func (h *Handler) health(ex *exchange, r *http.Request, path string) {
	hdr := ex.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		ex.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	status, body := http.StatusOK, "ok\n"
	if path == "/readyz" {
		if ready, reason := h.Readiness(); !ready {
			status, body = http.StatusServiceUnavailable, reason+"\n"
		}
	}
	ex.WriteHeader(status)
	if r.Method == http.MethodGet {
		_, _ = io.WriteString(ex, body)
	}
}

func (h *Handler) newRequestID(ex *exchange) string {
	b := append(ex.idBuf[:0], h.idPrefix...)
	b = strconv.AppendUint(b, h.idSeq.Add(1), 10)
	return string(b)
}
