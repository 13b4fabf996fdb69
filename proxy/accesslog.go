package proxy

import (
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/internal/metrics"
)

// accessLog writes the request's one access line. It logs no header value and
// no body; query-string values (phone numbers) are replaced by "*".
func (h *Handler) accessLog(ex *exchange, r *http.Request, start time.Time) {
	elapsed := h.now().Sub(start)
	h.observe(ex, elapsed)
	ev := h.log.Info()
	if ex.health {
		// Probes every few seconds would drown the log.
		ev = h.log.Debug()
	}
	if ev == nil {
		return
	}
	status := ex.status
	if !ex.wroteHeader {
		status = http.StatusOK
	}
	ev.Str("request_id", ex.requestID).
		Str("method", r.Method).
		Func(func(e *zerolog.Event) { e.Str("path", redactURI(r.RequestURI)) }).
		Int("status", status).
		Float64("duration_ms", float64(elapsed)/float64(time.Millisecond))
	if ex.route.Account != "" {
		ev.Str("account", ex.route.Account).
			Str("family", ex.route.Family.String()).
			Str("bucket", ex.route.Bucket.String()).
			Str("operation", ex.route.Operation.String())
	}
	if ex.client != "" {
		ev.Str("client", ex.client)
	} else if h.callers != nil && !ex.health {
		ev.Str("client", "anonymous")
	}
	if ex.waited > 0 {
		ev.Float64("limiter_wait_ms", float64(ex.waited)/float64(time.Millisecond))
	}
	if ex.up != nil {
		ev.Str("breaker", ex.up.breaker.State().String())
	}
	if ex.idem != "" {
		ev.Str("idempotency", ex.idem)
	}
	if ex.kind != "" {
		ev.Str("error", ex.kind)
	}
	if ex.cause != nil {
		// Transport errors name the host and the failure (DNS, refused,
		// TLS, timeout); the request they carry has no userinfo.
		ev.Str("cause", ex.cause.Error())
	}
	ev.Msg("request")
}

// redactURI returns the request target with every query value replaced by
// "*", keeping the keys, so a log shows the shape of a call but not the
// numbers in it. A target that is not a path (absolute or authority form,
// refused anyway) may carry userinfo and is not logged.
func redactURI(uri string) string {
	if !strings.HasPrefix(uri, "/") {
		return "[not a path]"
	}
	q := strings.IndexByte(uri, '?')
	if q < 0 {
		return uri
	}
	var b strings.Builder
	b.Grow(len(uri))
	b.WriteString(uri[:q+1])
	query := uri[q+1:]
	for first := true; ; first = false {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if !first {
			b.WriteByte('&')
		}
		key, _, hasValue := strings.Cut(pair, "=")
		b.WriteString(key)
		if hasValue {
			b.WriteString("=*")
		}
		if query == "" {
			break
		}
	}
	return b.String()
}

// observe records the request in the metrics.
func (h *Handler) observe(ex *exchange, elapsed time.Duration) {
	if h.metrics == nil || ex.health {
		return
	}
	status := ex.status
	if !ex.wroteHeader {
		status = http.StatusOK
	}
	account, bucket := metrics.UnknownAccount, ""
	if _, ok := h.accounts[ex.route.Account]; ok {
		account = ex.route.Account
		if ex.route.Family != exotel.FamilyUnknown {
			bucket = ex.route.Bucket.String()
		}
	}
	sent := ex.up != nil && ex.admitted && (ex.kind == "" || ex.kind == KindUpstreamUnreachable || ex.kind == KindUpstreamTimeout)
	h.metrics.Observe(metrics.Request{
		Account:           account,
		Bucket:            bucket,
		Client:            ex.client,
		Method:            ex.method,
		Status:            status,
		FromGateway:       ex.kind != "",
		Duration:          elapsed,
		Admitted:          ex.admitted,
		Rejected:          ex.kind == KindRateLimited,
		Waited:            ex.waited,
		Injected:          sent,
		InjectFailed:      ex.kind == KindCredentialsUnavailable,
		ClientAuthRemoved: ex.clientAuth && ex.up != nil,
	})
}
