package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"testing"
	"time"
)

// answer is one scripted upstream attempt.
type answer struct {
	status     int
	retryAfter string
	body       string
	lost       bool // the request is written whole, then the connection breaks
	refused    bool // the connection breaks before the request is written
	callerGone bool // the caller goes away while the request is out
	unread     bool // answered before the request's body was read
}

// attempt is what the upstream received.
type attempt struct{ auth, body string }

// replayRig is a replayer in front of a scripted upstream, with a
// Reauthorizer, a Limiter and a Pauser that record what they were asked.
// Everything runs on the test's goroutine.
type replayRig struct {
	t         *testing.T
	p         *replayer
	answers   []answer
	attempts  []attempt
	offerNew  bool     // Reauthorize has other credentials
	rejected  []string // the versions Reauthorize was told were refused
	admitErr  error    // the limiter's answer to a replay
	admits    int
	pauses    []time.Duration
	successes int
	accepted  []string // the Authorization headers Accepted was told of
	cancel    context.CancelFunc
}

var (
	_ Reauthorizer = (*replayRig)(nil)
	_ Limiter      = (*replayRig)(nil)
	_ Pauser       = (*replayRig)(nil)
	_ Acceptor     = (*replayRig)(nil)
)

func (r *replayRig) Accepted(_ string, h http.Header) {
	r.accepted = append(r.accepted, h.Get("Authorization"))
}

func (r *replayRig) Reauthorize(_ context.Context, h http.Header, _, rejected string) bool {
	r.rejected = append(r.rejected, rejected)
	if r.offerNew {
		h.Set("Authorization", "Basic new")
	}
	return r.offerNew
}

func (r *replayRig) Admit(context.Context, string, string) (time.Duration, error) {
	r.admits++
	return 0, r.admitErr
}

func (r *replayRig) Pause(_, _ string, d time.Duration) time.Duration {
	r.pauses = append(r.pauses, d)
	if d == 0 {
		return time.Second // the limiter's own backoff
	}
	return d
}

func (r *replayRig) Succeeded(string, string) { r.successes++ }

func (r *replayRig) RoundTrip(req *http.Request) (*http.Response, error) {
	if len(r.attempts) == len(r.answers) {
		r.t.Errorf("attempt %d, past the script", len(r.attempts)+1)
		return nil, errors.New("unscripted attempt")
	}
	a := r.answers[len(r.attempts)]
	var body []byte
	if req.Body != nil && !a.unread {
		body, _ = io.ReadAll(req.Body)
	}
	r.attempts = append(r.attempts, attempt{req.Header.Get("Authorization"), string(body)})
	if a.refused {
		return nil, errors.New("connection refused")
	}
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{})
	}
	if a.callerGone {
		r.cancel()
		return nil, context.Canceled
	}
	if a.lost {
		return nil, io.ErrUnexpectedEOF
	}
	resp := &http.Response{StatusCode: a.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(a.body))}
	if a.retryAfter != "" {
		resp.Header.Set("Retry-After", a.retryAfter)
	}
	return resp, nil
}

// TestReplayer walks the replayer through Exotel's answers: which are
// sent once more, with what, and what the caller is answered.
func TestReplayer(t *testing.T) {
	const form = "From=0999&To=0888&CallerId=0777"
	ok := answer{status: 200, body: "done"}
	unauthorized := answer{status: 401, body: "Authentication failed"}
	tooMany := func(retryAfter string) answer {
		return answer{status: 429, retryAfter: retryAfter, body: "Too Many Requests"}
	}
	for _, tc := range []struct {
		name      string
		method    string // default POST, with form as its body
		answers   []answer
		offerNew  bool
		noReauth  bool          // no Reauthorizer
		noPauser  bool          // no Pauser
		retryWait time.Duration // default 2s
		admitErr  error

		status    int // 0: an error
		unknown   bool
		body      string // the answer's body, when status is set
		attempts  int
		auths     []string // Authorization of each attempt
		rejected  []string
		admits    int
		pauses    []time.Duration
		successes int
		// retryAfter is the Retry-After the caller is answered, checked
		// when set.
		retryAfter string
	}{
		{name: "200: success reported", answers: []answer{ok},
			status: 200, body: "done", attempts: 1, successes: 1},
		{name: "401 then 200: one replay with new credentials", answers: []answer{unauthorized, ok}, offerNew: true,
			status: 200, body: "done", attempts: 2, auths: []string{"Basic old", "Basic new"}, rejected: []string{"v1"}, admits: 1, successes: 1},
		{name: "401 then 200, a GET", method: "GET", answers: []answer{unauthorized, ok}, offerNew: true,
			status: 200, body: "done", attempts: 2, auths: []string{"Basic old", "Basic new"}, rejected: []string{"v1"}, admits: 1, successes: 1},
		{name: "second 401 answered", answers: []answer{unauthorized, unauthorized}, offerNew: true,
			status: 401, body: "Authentication failed", attempts: 2, rejected: []string{"v1"}, admits: 1},
		{name: "401, nothing newer: Exotel's 401 answered", answers: []answer{unauthorized},
			status: 401, body: "Authentication failed", attempts: 1, rejected: []string{"v1"}},
		{name: "401 without a Reauthorizer", answers: []answer{unauthorized}, offerNew: true, noReauth: true,
			status: 401, body: "Authentication failed", attempts: 1},
		{name: "401 before the body was read: not replayed", answers: []answer{{status: 401, unread: true}}, offerNew: true,
			status: 401, attempts: 1},
		{name: "401, the limiter refuses the replay", answers: []answer{unauthorized}, offerNew: true, admitErr: limited{time.Second},
			status: 401, body: "Authentication failed", attempts: 1, rejected: []string{"v1"}, admits: 1},
		{name: "lost answer to a POST: outcome unknown, not replayed", answers: []answer{{lost: true}},
			unknown: true, attempts: 1},
		{name: "lost answer to a GET: an ordinary failure", method: "GET", answers: []answer{{lost: true}},
			attempts: 1},
		{name: "POST refused before it was written: an ordinary failure", answers: []answer{{refused: true}},
			attempts: 1},
		{name: "caller gone after the POST was written: not outcome unknown", answers: []answer{{callerGone: true}},
			attempts: 1},
		{name: "401, replay's answer lost: outcome unknown", answers: []answer{unauthorized, {lost: true}}, offerNew: true,
			unknown: true, attempts: 2, rejected: []string{"v1"}, admits: 1},
		{name: "401, replay refused before written: Exotel's 401 stands", answers: []answer{unauthorized, {refused: true}}, offerNew: true,
			status: 401, body: "Authentication failed", attempts: 2, rejected: []string{"v1"}, admits: 1},
		{name: "429 within the wait: paused, replayed", answers: []answer{tooMany("1"), ok},
			status: 200, body: "done", attempts: 2, auths: []string{"Basic old", "Basic old"}, admits: 1, pauses: []time.Duration{time.Second}, successes: 1},
		{name: "429 without Retry-After: the limiter's backoff", answers: []answer{tooMany(""), ok},
			status: 200, body: "done", attempts: 2, admits: 1, pauses: []time.Duration{0}, successes: 1},
		{name: "429 past the wait: Exotel's 429 passed on", answers: []answer{tooMany("30")},
			status: 429, body: "Too Many Requests", attempts: 1, pauses: []time.Duration{30 * time.Second}, retryAfter: "30"},
		{name: "429 without Retry-After passed on: the pause's", answers: []answer{tooMany("")}, retryWait: -1,
			status: 429, body: "Too Many Requests", attempts: 1, pauses: []time.Duration{0}, retryAfter: "1"},
		{name: "second 429 without Retry-After: the pause's", answers: []answer{tooMany(""), tooMany("")},
			status: 429, body: "Too Many Requests", attempts: 2, admits: 1, pauses: []time.Duration{0, 0}, retryAfter: "1"},
		{name: "429, replays off", answers: []answer{tooMany("1")}, retryWait: -1,
			status: 429, body: "Too Many Requests", attempts: 1, pauses: []time.Duration{time.Second}},
		{name: "second 429 paused and answered", answers: []answer{tooMany("1"), tooMany("2")},
			status: 429, body: "Too Many Requests", attempts: 2, admits: 1, pauses: []time.Duration{time.Second, 2 * time.Second}},
		{name: "429, the limiter refuses the replay: Exotel's 429 kept", answers: []answer{tooMany("1")}, admitErr: limited{time.Second},
			status: 429, body: "Too Many Requests", attempts: 1, admits: 1, pauses: []time.Duration{time.Second}},
		{name: "429, replay's answer lost: outcome unknown", answers: []answer{tooMany("1"), {lost: true}},
			unknown: true, attempts: 2, admits: 1, pauses: []time.Duration{time.Second}},
		{name: "429 without a Pauser: passed on", answers: []answer{tooMany("1")}, noPauser: true,
			status: 429, body: "Too Many Requests", attempts: 1},
		{name: "401, then 429 on the replay: paused and replayed again", answers: []answer{unauthorized, tooMany("1"), ok}, offerNew: true,
			status: 200, body: "done", attempts: 3, auths: []string{"Basic old", "Basic new", "Basic new"}, rejected: []string{"v1"}, admits: 2,
			pauses: []time.Duration{time.Second}, successes: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := &replayRig{t: t, answers: tc.answers, offerNew: tc.offerNew, admitErr: tc.admitErr, cancel: cancel}
			r.p = &replayer{account: "acme", bucket: "voice_v1", limiter: r, reauth: r, pauser: r, acceptor: r,
				retryWait: 2 * time.Second, next: r, now: func() time.Time { return time.Unix(1e9, 0) }}
			if tc.retryWait != 0 {
				r.p.retryWait = tc.retryWait
			}
			if tc.noReauth {
				r.p.reauth = nil
			}
			if tc.noPauser {
				r.p.pauser = nil
			}
			method, sent := "POST", form
			if tc.method != "" {
				method, sent = tc.method, ""
			}
			req, _ := http.NewRequestWithContext(ctx, method, "https://api.exotel.com/v1/Accounts/acme/Calls/connect.json", nil)
			req.Header.Set("Authorization", "Basic old")
			body := &limitedBody{rc: io.NopCloser(strings.NewReader(sent)), left: 1 << 20, record: true}
			if sent != "" {
				req.Body, req.ContentLength = body, int64(len(sent))
			}

			resp, err := r.p.roundTrip(req, "v1", body)

			var unknown *errOutcomeUnknown
			switch {
			case tc.status == 0 && err == nil:
				t.Fatalf("answered %d, want an error", resp.StatusCode)
			case tc.status == 0 && errors.As(err, &unknown) != tc.unknown:
				t.Errorf("error %v: outcome unknown %v, want %v", err, !tc.unknown, tc.unknown)
			case tc.status != 0 && err != nil:
				t.Fatalf("error %v, want %d", err, tc.status)
			case tc.status != 0:
				got, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tc.status || (tc.body != "" && string(got) != tc.body) {
					t.Errorf("answered %d %q, want %d %q", resp.StatusCode, got, tc.status, tc.body)
				}
				if ra := resp.Header.Get("Retry-After"); tc.retryAfter != "" && ra != tc.retryAfter {
					t.Errorf("Retry-After %q, want %q", ra, tc.retryAfter)
				}
			}
			if len(r.attempts) != tc.attempts {
				t.Fatalf("upstream saw %d attempts, want %d", len(r.attempts), tc.attempts)
			}
			for i, a := range r.attempts {
				if tc.answers[i].unread {
					continue
				}
				if a.body != sent {
					t.Errorf("attempt %d carried body %q, want %q", i+1, a.body, sent)
				}
				if tc.auths != nil && a.auth != tc.auths[i] {
					t.Errorf("attempt %d carried %q, want %q", i+1, a.auth, tc.auths[i])
				}
			}
			if !slices.Equal(r.rejected, tc.rejected) {
				t.Errorf("Reauthorize told %q, want %q", r.rejected, tc.rejected)
			}
			if r.admits != tc.admits {
				t.Errorf("%d replays admitted by the limiter, want %d", r.admits, tc.admits)
			}
			if !slices.Equal(r.pauses, tc.pauses) {
				t.Errorf("pauses %v, want %v", r.pauses, tc.pauses)
			}
			if r.successes != tc.successes {
				t.Errorf("%d successes reported, want %d", r.successes, tc.successes)
			}
			// The credentials of the attempt Exotel answered below 400 are
			// reported accepted, once; a refusal reports nothing.
			var accepted []string
			if tc.status != 0 && tc.status < 400 {
				accepted = []string{r.attempts[len(r.attempts)-1].auth}
			}
			if !slices.Equal(r.accepted, accepted) {
				t.Errorf("Accepted told %q, want %q", r.accepted, accepted)
			}
		})
	}
}

// TestReplayOf: a second attempt has the body again, or is not made.
func TestReplayOf(t *testing.T) {
	get, _ := http.NewRequest("GET", "https://api.exotel.com/v1/Accounts/acme/Calls.json", nil)
	if retry, ok := replayOf(get, nil); !ok || retry.Body != nil {
		t.Errorf("a request without a body: %v %v", retry, ok)
	}

	read := &limitedBody{rc: io.NopCloser(strings.NewReader("a=1")), left: 10, record: true}
	post, _ := http.NewRequest("POST", "https://api.exotel.com/v1/Accounts/acme/Sms/send.json", read)
	if _, ok := replayOf(post, read); ok {
		t.Error("replayed before the body was read to the end")
	}
	_, _ = io.ReadAll(read)
	retry, ok := replayOf(post, read)
	if !ok {
		t.Fatal("no replay of a body read whole")
	}
	if got, _ := io.ReadAll(retry.Body); string(got) != "a=1" {
		t.Errorf("replayed body %q", got)
	}
	if _, ok := replayOf(post, nil); ok {
		t.Error("replayed a body the replayer did not see")
	}

	unkept := &limitedBody{rc: io.NopCloser(strings.NewReader("a=1")), left: 10}
	_, _ = io.ReadAll(unkept)
	if _, ok := replayOf(post, unkept); ok {
		t.Error("replayed a body that was not kept")
	}
}
