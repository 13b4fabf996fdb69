package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/exogate/exogate/internal/metrics"
)

// replayer makes one request's exchange with Exotel for one account and
// bucket. It never sends again a request that may have been acted on; it
// sends one again, once, only after Exotel said it did nothing with it: a
// 401 when the Reauthorizer has other credentials, a 429 when the pause it
// asks for is short enough. Its zero fields turn the replays off (nil
// reauth: no replay after a 401; nil pauser: Exotel's 429s pass as they
// are). Safe for concurrent use.
type replayer struct {
	account   string
	bucket    string
	host      string // "api" or "ccm", for metrics
	metrics   *metrics.Metrics
	reauth    Reauthorizer
	acceptor  Acceptor // nil: not told
	limiter   Limiter  // nil: a replay takes no token
	pauser    Pauser
	retryWait time.Duration // the longest pause waited out before a replay (negative: never)
	next      http.RoundTripper
	now       func() time.Time
}

// roundTrip sends req, which carries the credentials of version, and
// replays it once if Exotel answered that it acted on nothing. body is
// what req's body was read from (nil: req has none, or it cannot be sent
// again).
func (p *replayer) roundTrip(req *http.Request, version string, body *limitedBody) (*http.Response, error) {
	start := p.now()
	resp, err := p.send(req)
	if err != nil {
		return nil, err
	}
	p.metrics.Upstream(p.account, p.host, resp.StatusCode, p.now().Sub(start))
	if resp.StatusCode == http.StatusUnauthorized && p.reauth != nil {
		// From here on req is the attempt resp answers: a replay after a
		// 429 that follows carries the new credentials.
		req, resp, err = p.afterUnauthorized(req, resp, version, body)
		if err != nil {
			return nil, err
		}
	}
	if p.pauser != nil {
		if resp.StatusCode == http.StatusTooManyRequests {
			// A replay after the pause carries req's credentials.
			if resp, err = p.afterTooManyRequests(req, resp, body); err != nil {
				return nil, err
			}
		} else if resp.StatusCode < 400 {
			p.pauser.Succeeded(p.account, p.bucket)
		}
	}
	if p.acceptor != nil && resp.StatusCode < 400 {
		p.acceptor.Accepted(p.account, req.Header)
	}
	return resp, nil
}

// send sends one attempt of req. A failure after the whole request reached
// Exotel is an *errOutcomeUnknown (for a method that may change something):
// Exotel may have acted on it.
func (p *replayer) send(req *http.Request) (*http.Response, error) {
	if safeMethod(req.Method) {
		// Nothing to tell apart: a lost answer to a read changed nothing.
		return p.next.RoundTrip(req)
	}
	var written atomic.Bool
	sent := req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			written.Store(info.Err == nil)
			if ex := exchangeOf(req.Context()); ex != nil && info.Err == nil {
				ex.written.Store(true)
			}
		},
	}))
	resp, err := p.next.RoundTrip(sent)
	if ex := exchangeOf(req.Context()); ex != nil && written.Load() {
		// Whether the last attempt to reach Exotel was answered: a replay
		// lost after an earlier attempt's 401 or 429 leaves that answer to
		// the caller, but Exotel may have acted on the replay.
		ex.lost.Store(err != nil)
	}
	if err != nil && written.Load() && req.Context().Err() == nil {
		err = &errOutcomeUnknown{err}
	}
	return resp, err
}

// afterUnauthorized sends a request Exotel refused with 401 once more, if
// the credentials store has other credentials worth trying (a rotation that
// reached Exotel before our poller saw it, or Exotel's own propagation lag).
// A 401 means Exotel acted on nothing, so this holds for a POST too, as long
// as its whole body was read and kept. It returns the attempt whose answer
// it returns.
func (p *replayer) afterUnauthorized(req *http.Request, resp *http.Response, version string, body *limitedBody) (*http.Request, *http.Response, error) {
	retry, ok := replayOf(req, body)
	if !ok {
		return req, resp, nil
	}
	if !p.reauth.Reauthorize(req.Context(), retry.Header, p.account, version) {
		return req, resp, nil
	}
	// The replay is a request to Exotel like any other: it takes a token.
	if p.limiter != nil {
		if _, err := p.limiter.Admit(req.Context(), p.account, p.bucket); err != nil {
			return req, resp, nil
		}
	}
	second, err := p.send(retry)
	if err != nil {
		resp, err = replayFailed(resp, err)
		return req, resp, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return retry, second, nil
}

// afterTooManyRequests handles Exotel's own 429: the whole fleet pauses the
// bucket (for Exotel's Retry-After, or an exponential backoff), and if the
// pause is short enough for the caller the request is sent once more after
// it — a 429 means Exotel acted on nothing. Otherwise Exotel's 429 is passed
// on, with the pause as its Retry-After when Exotel sent none, so that the
// caller knows when the gateway will send again.
func (p *replayer) afterTooManyRequests(req *http.Request, resp *http.Response, body *limitedBody) (out *http.Response, err error) {
	pause := p.pauser.Pause(p.account, p.bucket, parseRetryAfter(resp.Header.Get("Retry-After"), p.now()))
	defer func() {
		if err == nil && out.StatusCode == http.StatusTooManyRequests && out.Header.Get("Retry-After") == "" && pause > 0 {
			out.Header.Set("Retry-After", strconv.FormatInt(retryAfterSeconds(pause), 10))
		}
	}()
	if pause > p.retryWait || p.retryWait < 0 {
		return resp, nil
	}
	retry, ok := replayOf(req, body)
	if !ok {
		return resp, nil
	}
	// Keep Exotel's answer to hand back if the second try cannot be made.
	kept, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if err != nil {
		kept = nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(kept))
	resp.ContentLength = int64(len(kept))
	if p.limiter != nil {
		// Admit honours the pause: it waits it out (or refuses).
		if _, err := p.limiter.Admit(req.Context(), p.account, p.bucket); err != nil {
			return resp, nil
		}
	}
	second, err := p.send(retry)
	if err != nil {
		return replayFailed(resp, err)
	}
	if second.StatusCode == http.StatusTooManyRequests {
		pause = p.pauser.Pause(p.account, p.bucket, parseRetryAfter(second.Header.Get("Retry-After"), p.now()))
	} else if second.StatusCode < 400 {
		p.pauser.Succeeded(p.account, p.bucket)
	}
	return second, nil
}

// replayOf returns a second attempt of req with a fresh copy of its body,
// or false if the body cannot be had again (not read to the end, not kept,
// or not read from body).
func replayOf(req *http.Request, body *limitedBody) (*http.Request, bool) {
	retry := req.Clone(req.Context())
	if req.Body == nil {
		return retry, true
	}
	if body == nil {
		return nil, false
	}
	rc, ok := body.replay()
	if !ok {
		return nil, false
	}
	retry.Body = rc
	return retry, true
}

// replayFailed decides what a failed second attempt leaves the caller: if
// it reached Exotel whole, the outcome is unknown and that is the answer
// (first's body is discarded); otherwise the first answer stands, Exotel's
// own 401 or 429 being truer than our failure.
func replayFailed(first *http.Response, err error) (*http.Response, error) {
	var unknown *errOutcomeUnknown
	if errors.As(err, &unknown) {
		_ = first.Body.Close()
		return nil, err
	}
	return first, nil
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
// It returns 0 when there is none or it cannot be read.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if secs <= 0 || secs > 24*3600 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 && d <= 24*time.Hour {
			return d
		}
	}
	return 0
}

// safeMethod reports whether method changes nothing at Exotel.
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}
