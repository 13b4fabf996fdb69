package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/exogate/exogate/internal/callers"
	"github.com/exogate/exogate/internal/exotel"
)

// Error kinds, sent in the X-Exogate-Error header of every response the
// gateway makes itself so that callers can tell them from Exotel's own.
const (
	KindBadRequest             = "bad_request"
	KindNotFound               = "not_found"
	KindUnknownAccount         = "unknown_account"
	KindMethodNotAllowed       = "method_not_allowed"
	KindRateLimited            = "rate_limited"
	KindCircuitOpen            = "circuit_open"
	KindCredentialsUnavailable = "credentials_unavailable"
	KindUnauthenticated        = "unauthenticated"
	KindForbidden              = "forbidden"
	KindBodyTooLarge           = "body_too_large"
	KindUpstreamTimeout        = "upstream_timeout"
	KindUpstreamUnreachable    = "upstream_unreachable"
	KindUpstreamOutcomeUnknown = "upstream_outcome_unknown"
	KindClientClosed           = "client_closed"
	KindOverloaded             = "overloaded"
)

// HeaderError names the header that carries the kind of a gateway-made error.
const HeaderError = "X-Exogate-Error"

// Errors the handler raises for conditions it answers itself.
var (
	errUnknownAccount = errors.New("unknown account")
	errAbsoluteURI    = errors.New("absolute-form request target")
	errConnect        = errors.New("CONNECT is not supported")
	errBodyTooLarge   = errors.New("request body too large")
	errCredentials    = errors.New("credentials unavailable")
	errForbidden      = errors.New("caller may not use this account, operation, bucket or method")
	errOverloaded     = errors.New("too many requests or connections in flight")
)

// errCircuitOpen is returned by the breaker transport when it refuses a
// request; RetryAfter is the time left before the breaker lets a probe through.
type errCircuitOpen struct{ retryAfter time.Duration }

func (e *errCircuitOpen) Error() string             { return "circuit breaker is open" }
func (e *errCircuitOpen) RetryAfter() time.Duration { return e.retryAfter }

// errOutcomeUnknown is an upstream failure after the whole request was
// written: Exotel may have acted on it (placed the call, sent the SMS).
type errOutcomeUnknown struct{ err error }

func (e *errOutcomeUnknown) Error() string {
	return "no answer after the request was sent: " + e.err.Error()
}
func (e *errOutcomeUnknown) Unwrap() error { return e.err }

// retryAfterer is implemented by errors that know when a retry may succeed
// (the limiter's rejection, an open breaker).
type retryAfterer interface{ RetryAfter() time.Duration }

// response is what the gateway answers for an error.
type response struct {
	status     int
	kind       string
	message    string
	retryAfter time.Duration
}

// toResponse is the one place that maps an error to the gateway's answer.
func toResponse(err error) response {
	var (
		ra      retryAfterer
		open    *errCircuitOpen
		unknown *errOutcomeUnknown
		kept    *errKeptUnknown
	)
	switch {
	case errors.Is(err, exotel.ErrBadPath):
		return response{http.StatusBadRequest, KindBadRequest, "Bad request: the request path is malformed or not allowed", 0}
	case errors.As(err, new(*errCallbackRoute)):
		return response{http.StatusBadRequest, KindBadRequest, "Bad request: " + err.Error(), 0}
	case errors.Is(err, errAbsoluteURI):
		return response{http.StatusBadRequest, KindBadRequest, "Bad request: send the path only, exogate is not an open proxy", 0}
	case errors.Is(err, exotel.ErrNotFound):
		return response{http.StatusNotFound, KindNotFound, "The requested resource was not found", 0}
	case errors.Is(err, errUnknownAccount):
		return response{http.StatusNotFound, KindUnknownAccount, "Account SID not served by this gateway: check the Account SID in the path", 0}
	case errors.Is(err, exotel.ErrMethod), errors.Is(err, errConnect):
		return response{http.StatusMethodNotAllowed, KindMethodNotAllowed, "Method not allowed", 0}
	case errors.Is(err, errBodyTooLarge):
		msg := "Request body too large"
		var tl bodyTooLarge
		if errors.As(err, &tl) {
			msg = fmt.Sprintf("Request body too large: this gateway accepts at most %d bytes (max_body)", tl.limit)
		}
		return response{http.StatusRequestEntityTooLarge, KindBodyTooLarge, msg, 0}
	case errors.Is(err, callers.ErrUnauthenticated):
		return response{http.StatusUnauthorized, KindUnauthenticated, "Authentication failed: send this gateway's client id and secret as HTTP Basic credentials", 0}
	case errors.Is(err, errForbidden):
		return response{http.StatusForbidden, KindForbidden, "Forbidden: this client may not use this account, operation or method", 0}
	case errors.Is(err, errCredentials):
		return response{http.StatusServiceUnavailable, KindCredentialsUnavailable, "Gateway has no credentials for this account yet", time.Second}
	case errors.Is(err, errOverloaded):
		return response{http.StatusServiceUnavailable, KindOverloaded, "Gateway overloaded: too many requests in flight, retry after the Retry-After interval", time.Second}
	case errors.Is(err, errKeyInvalid):
		return response{http.StatusBadRequest, KindIdempotencyKeyInvalid, "Bad request: an Idempotency-Key must be 1 to 255 visible ASCII characters, sent once", 0}
	case errors.Is(err, errKeyRequired):
		return response{http.StatusBadRequest, KindIdempotencyKeyRequired, "Bad request: this gateway requires an Idempotency-Key header on this request, so that a retry cannot carry it out twice", 0}
	case errors.Is(err, errKeyInUse):
		return response{http.StatusConflict, KindIdempotencyKeyInUse, "A request with this Idempotency-Key is still being processed: retry after the Retry-After interval", time.Second}
	case errors.Is(err, errKeyReused):
		return response{http.StatusUnprocessableEntity, KindIdempotencyKeyReused, "This Idempotency-Key was used for a different request: use a new key for a new request", 0}
	case errors.Is(err, errKeysDown):
		return response{http.StatusServiceUnavailable, KindIdempotencyUnavailable, "Gateway cannot check Idempotency-Keys right now: retry after the Retry-After interval", time.Second}
	case errors.As(err, &kept):
		return response{kept.status, KindUpstreamOutcomeUnknown, kept.message, 0}
	case errors.As(err, &open):
		return response{http.StatusServiceUnavailable, KindCircuitOpen, "Upstream temporarily unavailable: circuit breaker open", open.retryAfter}
	case errors.As(err, &ra):
		// The limiter's rejection: the only other error that knows when to retry.
		return response{http.StatusTooManyRequests, KindRateLimited, "Too many requests: rate limit exceeded, retry after the Retry-After interval", ra.RetryAfter()}
	case errors.Is(err, context.Canceled):
		return response{499, KindClientClosed, "Client closed the request", 0}
	case errors.As(err, &unknown):
		status := http.StatusBadGateway
		if isTimeout(err) {
			status = http.StatusGatewayTimeout
		}
		return response{status, KindUpstreamOutcomeUnknown, "Upstream did not answer after the request was sent: it may have been carried out; check before retrying", 0}
	case isTimeout(err):
		return response{http.StatusGatewayTimeout, KindUpstreamTimeout, "Upstream did not answer in time", 0}
	default:
		return response{http.StatusBadGateway, KindUpstreamUnreachable, "Upstream unreachable" + unreachableReason(err), 0}
	}
}

// unreachableReason names the kind of failure that kept the request from
// Exotel, for the caller to tell a DNS or firewall problem from a TLS one,
// without the error's text (no host, address or certificate detail).
func unreachableReason(err error) string {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var alert tls.AlertError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.As(err, &dnsErr):
		return ": its host name did not resolve (DNS)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return ": connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return ": connection reset"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return ": no route to it"
	case errors.As(err, &certErr):
		return ": its TLS certificate was not trusted"
	case errors.As(err, &alert), errors.As(err, &recordErr):
		return ": TLS handshake failed"
	}
	return ""
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retryAfterSeconds rounds d up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// writeError answers err in the Exotel shape the caller expects.
func writeError(w http.ResponseWriter, shape exotel.Shape, method, requestID string, err error) string {
	resp := toResponse(err)
	h := w.Header()
	// Whatever a partial upstream response set does not belong to this answer.
	for k := range h {
		if k != "X-Request-Id" && k != "Connection" && k != headerIdempotentReplayed {
			delete(h, k)
		}
	}
	h.Set(HeaderError, resp.kind)
	if resp.retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(retryAfterSeconds(resp.retryAfter), 10))
	}
	if resp.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="exogate"`)
	}
	if resp.status == http.StatusMethodNotAllowed {
		h.Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE")
	}
	status := resp.status
	if status == 499 {
		// The caller is gone; nothing is read, but the status must be valid.
		status = http.StatusBadGateway
	}
	body, ctype := exotel.AppendError(nil, shape, status, resp.message, method, requestID)
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return resp.kind
}

// bodyTooLarge is errBodyTooLarge with the limit it went past, for the
// caller's message.
type bodyTooLarge struct{ limit int64 }

func (e bodyTooLarge) Error() string {
	return fmt.Sprintf("request body larger than %d bytes", e.limit)
}
func (e bodyTooLarge) Is(target error) bool { return target == errBodyTooLarge }
