package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/internal/idempotency"
)

// Idempotency makes a POST sent with an Idempotency-Key (or
// X-Idempotency-Key) safe to retry: the first request with a key is
// forwarded once and its outcome kept; a repeat gets that outcome with
// Idempotent-Replayed: true and nothing is sent to Exotel.
type Idempotency struct {
	Keys *idempotency.Keys // required
	// RequireFor are the operations whose POSTs must carry a key (400
	// idempotency_key_required without one).
	RequireFor []exotel.Operation
	// Forward: when the keys' backend fails, forward the request without
	// the key's protection instead of refusing it with 503.
	Forward bool
	// MaxAnswer is the largest answer kept, in bytes (0: 1 MiB). A larger
	// one is kept as an unknown outcome.
	MaxAnswer int
}

// Error kinds of the idempotency checks.
const (
	KindIdempotencyKeyInUse     = "idempotency_key_in_use"
	KindIdempotencyKeyReused    = "idempotency_key_reused"
	KindIdempotencyKeyRequired  = "idempotency_key_required"
	KindIdempotencyKeyInvalid   = "idempotency_key_invalid"
	KindIdempotencyUnavailable  = "idempotency_unavailable"
	headerIdempotentReplayed    = "Idempotent-Replayed"
	defaultMaxIdempotencyAnswer = 1 << 20
)

var (
	errKeyInUse     = errors.New("idempotency key in use")
	errKeyReused    = errors.New("idempotency key reused")
	errKeyRequired  = errors.New("idempotency key required")
	errKeyInvalid   = errors.New("idempotency key invalid")
	errKeysDown     = errors.New("idempotency keys unavailable")
	idempotencyHdrs = [...]string{"Idempotency-Key", "X-Idempotency-Key"}
)

// errKeptUnknown is the kept outcome of a keyed request whose answer was
// lost: what its retries get instead of a second call.
type errKeptUnknown struct {
	status  int
	message string
}

func (e *errKeptUnknown) Error() string { return "upstream outcome unknown (kept)" }

// keyed is a keyed request's state in its exchange.
type keyed struct {
	claim    *idempotency.Claim
	limit    int    // the largest answer kept (Idempotency.MaxAnswer)
	answer   []byte // Exotel's answer as it streams back, up to the cap
	overflow bool   // the answer outgrew the cap
	ctype    string
}

// idempotencyKey returns the request's key, "" when it has none, or an
// error when it is malformed or given twice with two values.
func idempotencyKey(r *http.Request) (string, error) {
	var key string
	for _, name := range idempotencyHdrs {
		for _, v := range r.Header.Values(name) {
			if !idempotency.ValidKey(v) || (key != "" && key != v) {
				return "", errKeyInvalid
			}
			key = v
		}
	}
	return key, nil
}

// reserve applies the idempotency rules before a POST goes anywhere: it
// answers a repeat (the kept outcome, 409 while the first is in flight,
// 422 for another request under the key) and reports true, or reserves
// the key for this request (ex.keyed) and reports false. The body is read
// whole here, to fingerprint it.
func (h *Handler) reserve(ex *exchange, r *http.Request) (answered bool, err error) {
	idem := h.idem
	if idem == nil || r.Method != http.MethodPost {
		return false, nil
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return false, err
	}
	if key == "" {
		for _, op := range idem.RequireFor {
			if op == ex.route.Operation {
				return false, errKeyRequired
			}
		}
		return false, nil
	}
	if r.Body != nil && r.Body != http.NoBody {
		if err := ex.body.preload(r.Body, h.maxBody); err != nil {
			return false, err
		}
	}
	// The answer's shape is part of the request: the key of a JSON request
	// sent again to the path's XML spelling is reused, not a new call.
	fp := idempotency.FingerprintOf(ex.body.rec, r.Header.Get("Content-Type"), r.URL.RawQuery, strconv.Itoa(int(ex.route.Shape)))
	scope := idempotency.Scope{Client: ex.client, Account: ex.route.Account, Method: r.Method, Path: keyPath(rawPath(r.RequestURI))}
	state, claim, kept, err := idem.Keys.Begin(r.Context(), scope, key, fp)
	switch {
	case err != nil && idem.Forward:
		h.log.Warn().Err(err).Str("request_id", ex.requestID).Msg("idempotency keys unavailable: forwarding without the key's protection")
		ex.idem = "unprotected"
		return false, nil
	case err != nil:
		h.log.Error().Err(err).Str("request_id", ex.requestID).Msg("idempotency keys unavailable: request refused")
		return false, errKeysDown
	case state == idempotency.InFlight:
		ex.idem = "conflict"
		return false, errKeyInUse
	case state == idempotency.Mismatch:
		ex.idem = "mismatch"
		return false, errKeyReused
	case state == idempotency.Replay:
		ex.idem = "replayed"
		h.replayKept(ex, kept)
		return true, nil
	}
	ex.idem = "reserved"
	ex.keyed = &keyed{claim: claim, limit: idem.MaxAnswer}
	return false, nil
}

// keyPath is the path a key is scoped to: raw as Exotel reads it, which
// is how Classify reads it, so that no other spelling of one path (case,
// empty segments, percent-escapes, a ".json" suffix or a final "/") is a
// scope of its own in which the same key is forwarded again (the suffix
// is in the request's fingerprint instead, as its answer's shape).
// Classify has refused escapes of separators and of bytes outside visible
// ASCII.
func keyPath(raw string) string {
	var b strings.Builder
	for _, seg := range strings.Split(raw, "/") {
		if dec, err := url.PathUnescape(seg); err == nil {
			seg = dec
		}
		if seg == "" {
			continue
		}
		b.WriteByte('/')
		b.WriteString(strings.ToLower(seg))
	}
	return strings.TrimSuffix(b.String(), ".json")
}

// replayKept answers a repeat with the first request's kept outcome.
func (h *Handler) replayKept(ex *exchange, a *idempotency.Answer) {
	ex.Header().Set(headerIdempotentReplayed, "true")
	if a.Unknown {
		msg := string(a.Body)
		if msg == "" {
			msg = unknownMessage(ex.route.Operation, nil)
		}
		h.fail(ex, ex.route.Shape, &errKeptUnknown{status: a.Status, message: msg})
		return
	}
	hdr := ex.Header()
	if a.ContentType != "" {
		hdr.Set("Content-Type", a.ContentType)
	}
	hdr.Set("Cache-Control", "no-store")
	ex.WriteHeader(a.Status)
	_, _ = ex.Write(a.Body)
}

// keep records what the caller is sent of Exotel's answer, for the key.
func (k *keyed) keep(p []byte) {
	if k.overflow {
		return
	}
	if len(k.answer)+len(p) > k.limit {
		k.overflow, k.answer = true, nil
		return
	}
	k.answer = append(k.answer, p...)
}

// settle decides a keyed request's key once the request is over: Exotel's
// answer kept (whatever its status: Exotel may have acted), the key freed
// when nothing reached Exotel or Exotel acted on nothing (its own 401 or
// 429, unless a replay after it reached Exotel and went unanswered), and
// an unknown outcome kept when the request reached Exotel and its answer
// did not reach the caller whole.
func (h *Handler) settle(ex *exchange, r *http.Request) {
	k := ex.keyed
	if k == nil {
		return
	}
	// The caller may be gone: the key's fate must still be written.
	ctx := context.WithoutCancel(r.Context())
	status := ex.upstreamStatus
	answered := status != 0 && ex.complete && ex.kind == "" && !ex.lost.Load()
	var err error
	switch {
	case answered && (status == http.StatusUnauthorized || status == http.StatusTooManyRequests):
		err = k.claim.Release(ctx)
		ex.idem = "released"
	case answered && !k.overflow:
		err = k.claim.Finish(ctx, idempotency.Answer{Status: status, ContentType: k.ctype, Body: k.answer})
	case ex.written.Load() || status != 0:
		code := http.StatusBadGateway
		if ex.status == http.StatusGatewayTimeout {
			code = http.StatusGatewayTimeout
		}
		err = k.claim.Finish(ctx, idempotency.Answer{Status: code, Unknown: true, Body: []byte(unknownMessage(ex.route.Operation, ex.expect))})
		ex.idem = "outcome_unknown"
	default:
		err = k.claim.Release(ctx)
		ex.idem = "released"
	}
	if err != nil {
		h.log.Error().Err(err).Str("request_id", ex.requestID).Msg("idempotency: the key's outcome could not be kept")
	}
}

// unknownMessage tells the caller of a keyed request whose answer was
// lost what to do instead of retrying.
func unknownMessage(op exotel.Operation, routes []string) string {
	var b strings.Builder
	b.WriteString("Upstream did not answer after the request was sent: it may have been carried out. This Idempotency-Key will not be forwarded again; ")
	switch op {
	case exotel.OpCallsConnect:
		b.WriteString("check the call's status with Exotel's Call Details API (the Calls list, filtered by To and DateCreated)")
	case exotel.OpSMSSend, exotel.OpSMSBulkSend:
		b.WriteString("check the message's status with Exotel's SMS Details API")
	default:
		b.WriteString("check with Exotel whether it was carried out before sending it again under a new key")
	}
	if len(routes) > 0 {
		b.WriteString("; the webhook route " + strings.Join(routes, ", ") + " will report its outcome")
	}
	return b.String()
}
