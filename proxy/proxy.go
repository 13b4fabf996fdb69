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
	"bytes"
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
	"sync"
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
	// Now is the clock (default time.Now).
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
		h.maxBody = 1 << 20
	}
	h.stdlog = logx.StdLogger(cfg.Logger, "proxy")
	h.metrics = cfg.Metrics
	h.callers, h.clientLim, h.maxWait = cfg.Callers, cfg.ClientLimiter, cfg.MaxWait
	h.writeLimit = cfg.WriteTimeout
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
			Rewrite: func(pr *httputil.ProxyRequest) { rewrite(pr, target) },
			Transport: &upstreamTransport{
				breaker:    up.breaker,
				account:    sid,
				bucket:     b.String(),
				host:       hostLabel,
				metrics:    h.metrics,
				authorizer: h.authorizer,
				reauth:     h.reauth,
				limiter:    h.limiter,
				pauser:     h.pauser,
				retryWait:  h.retryWait,
				next:       next,
				now:        h.now,
			},
			BufferPool:   &h.bufs,
			ErrorHandler: h.proxyError,
			ErrorLog:     h.stdlog,
			// Exotel's answers stream back as they arrive (listings can be long).
			FlushInterval: 0,
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
	// ReverseProxy wrapped the body to keep the transport from closing it;
	// limitedBody's Close does nothing, and the transport must see it to
	// replay the request after a 401.
	if lb, ok := pr.In.Body.(*limitedBody); ok && out.Body != nil {
		out.Body = lb
	}
	// Only the headers Exotel's API uses go upstream (allowlist): whatever
	// auth the caller sent, idempotency keys (with which Go's transport would
	// treat a POST as replayable, golang/go#19943), the caller's address and
	// every override header (X-HTTP-Method-Override, X-Original-URL, ...)
	// stay here. The transport sets the account's own Authorization.
	for k, v := range out.Header {
		if !forwardHeader(k, v) {
			delete(out.Header, k)
		}
	}
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
// which records what the access log needs.
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
	up          *upstream
	body        limitedBody
	idBuf       [32]byte
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
	h["X-Request-Id"] = []string{e.requestID}
	if e.closeConn {
		h.Set("Connection", "close")
	}
	if e.writeLimit > 0 {
		// The connection's deadline is the operating system's: wall time.
		_ = http.NewResponseController(e.ResponseWriter).SetWriteDeadline(time.Now().Add(e.writeLimit))
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
	ex := &exchange{ResponseWriter: w, method: r.Method, writeLimit: h.writeLimit}
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

func (h *Handler) serve(ex *exchange, r *http.Request) {
	raw := rawPath(r.RequestURI)
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
		return
	case !strings.HasPrefix(r.RequestURI, "/"):
		// Absolute-form ("GET http://host/..."), authority-form or "*":
		// exogate only ever talks to Exotel's hosts.
		h.fail(ex, exotel.ShapeJSON, errAbsoluteURI)
		return
	case raw == "/healthz" || raw == "/readyz":
		ex.health = true
		h.health(ex, r, raw)
		return
	}

	if over {
		h.fail(ex, exotel.ShapeOf(raw), errOverloaded)
		return
	}
	_, a1 := r.Header["Authorization"]
	_, a2 := r.Header["Proxy-Authorization"]
	ex.clientAuth = a1 || a2
	route, err := exotel.Classify(r.Method, raw)
	ex.route = route
	if err != nil {
		h.fail(ex, route.Shape, err)
		return
	}
	if h.maxFlight > 0 {
		if h.inFlight.Add(1) > h.maxFlight {
			h.inFlight.Add(-1)
			h.fail(ex, route.Shape, errOverloaded)
			return
		}
		defer h.inFlight.Add(-1)
	}
	if h.callers != nil {
		client, err := h.callers.Identify(r)
		if err != nil {
			h.fail(ex, route.Shape, err)
			return
		}
		if client != nil {
			ex.client = client.ID
		}
		// Rights before existence: a caller learns nothing of accounts it
		// may not use.
		if !client.Allowed(route, r.Method) {
			h.fail(ex, route.Shape, errForbidden)
			return
		}
	}
	acct, ok := h.accounts[route.Account]
	if !ok {
		h.fail(ex, route.Shape, errUnknownAccount)
		return
	}
	up := acct.upstreams[route.Host]
	ex.up = up

	if r.ContentLength > h.maxBody {
		h.fail(ex, route.Shape, errBodyTooLarge)
		return
	}
	// An open breaker answers at once, without queueing for the limiter
	// (the transport's Allow is the admission that counts).
	if up.breaker.State() == gobreaker.StateOpen {
		h.fail(ex, route.Shape, up.breaker.refusal())
		return
	}
	lctx := r.Context()
	if h.clientLim != nil && ex.client != "" {
		if h.maxWait > 0 {
			// One bound for both lines: what the client's cap took is gone
			// from the account's (the limiters refuse a turn past the
			// deadline at once, with Retry-After).
			var cancel context.CancelFunc
			// A context deadline is wall time, not the handler's clock.
			lctx, cancel = context.WithDeadline(lctx, time.Now().Add(h.maxWait))
			defer cancel()
		}
		waited, err := h.clientLim.Admit(lctx, ex.client, acct.sid, route.Bucket.String())
		ex.waited += waited
		if err != nil {
			h.fail(ex, route.Shape, err)
			return
		}
	}
	if h.limiter != nil {
		waited, err := h.limiter.Admit(lctx, acct.sid, route.Bucket.String())
		ex.waited += waited
		if err != nil && lctx != r.Context() && errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
			// The shared bound ran out at the account's line: a rate limit,
			// not an upstream timeout.
			err = waitExhausted{}
		}
		if err != nil {
			h.fail(ex, route.Shape, err)
			return
		}
		ex.admitted = true
	}
	// The body is read only now that the request is going upstream: a
	// request refused above cost no more than its header.
	if r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength < 0 {
			// A chunked body of unknown length is read whole (up to
			// MaxBody) before anything is sent, so an oversized one never
			// reaches Exotel in part, and it is forwarded with its length.
			if err := ex.body.preload(r.Body, h.maxBody); err != nil {
				h.fail(ex, route.Shape, err)
				return
			}
			r.ContentLength, r.TransferEncoding = int64(len(ex.body.rec)), nil
			r.Body = &ex.body
			if r.ContentLength == 0 {
				r.Body = http.NoBody
			}
		} else {
			ex.body.rc, ex.body.left, ex.body.record = r.Body, h.maxBody, h.reauth != nil || h.pauser != nil
			r.Body = &ex.body
		}
	}
	up.proxies[route.Bucket].ServeHTTP(ex, r)
}

// waitExhausted is a request's whole time in line used up before the
// account's limiter could admit it.
type waitExhausted struct{}

func (waitExhausted) Error() string             { return "proxy: time in line used up" }
func (waitExhausted) RetryAfter() time.Duration { return time.Second }

// fail answers the request with err in the Exotel shape and records the kind.
func (h *Handler) fail(ex *exchange, shape exotel.Shape, err error) {
	ex.kind = writeError(ex, shape, ex.method, ex.requestID, err)
	if ex.kind == KindClientClosed {
		ex.status = 499
	}
}

// proxyError is the ReverseProxy's ErrorHandler: a transport error, a breaker
// refusal, missing credentials, or a body that grew past MaxBody.
func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	ex := w.(*exchange)
	if ex.body.exceeded.Load() {
		err = errBodyTooLarge
	}
	ex.cause = err
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

// limitedBody passes the request body on and fails once more than MaxBody
// bytes have been read, whatever Content-Length said. When record is set it
// keeps a copy of what it passed on, so that a request Exotel refused with
// 401 or 429 can be sent again. A preloaded body (chunked on the way in) is
// held whole in rec from the start.
type limitedBody struct {
	rc        io.ReadCloser
	left      int64
	record    bool
	rec       []byte
	preloaded bool
	pre       bytes.Reader
	exceeded  atomic.Bool
	eof       atomic.Bool // the whole body was read: rec is complete
}

// preload reads the whole body, up to max bytes, into rec.
func (b *limitedBody) preload(rc io.Reader, max int64) error {
	buf := bytes.NewBuffer(b.rec[:0])
	n, err := buf.ReadFrom(io.LimitReader(rc, max+1))
	b.rec = buf.Bytes()
	switch {
	case n > max:
		return errBodyTooLarge
	case err != nil:
		return fmt.Errorf("reading the request body: %w", context.Canceled)
	}
	b.preloaded, b.record = true, true
	b.pre.Reset(b.rec)
	b.eof.Store(true)
	return nil
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.preloaded {
		return b.pre.Read(p)
	}
	if b.left <= 0 {
		// Read one byte more to tell "exactly MaxBody" from "more".
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			b.exceeded.Store(true)
			return 0, errBodyTooLarge
		}
		if err == io.EOF {
			b.eof.Store(true)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	// Only a read that brought bytes touches rec: the transport may read
	// again after the end while a replay is already copying rec.
	if b.record && n > 0 {
		b.rec = append(b.rec, p[:n]...)
	}
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

// Close does nothing: the server closes the client's body when the handler
// returns, and the transport must not close it before a replay.
func (b *limitedBody) Close() error { return nil }

// replay returns a fresh copy of the whole body, or false if it was not read
// to the end (Exotel answered before it was sent) or not recorded.
func (b *limitedBody) replay() (io.ReadCloser, bool) {
	if !b.record || !b.eof.Load() {
		return nil, false
	}
	return io.NopCloser(bytes.NewReader(b.rec)), true
}

// bufferPool lends the ReverseProxy its copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 8<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
