package webhooks

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/exogate/exogate/internal/testutil"
)

// TestDeliverEndToEnd runs the dispatchers: a callback accepted on the
// listener reaches the target byte for byte, signed, once.
func TestDeliverEndToEnd(t *testing.T) {
	e := newEnv(t, nil)
	e.svc.Start(context.Background())
	mpType, mpBody := multipartBody(t, [][2]string{{"CallSid", callSid}, {"Status", "completed"}, {"To", "09876543210"}})
	if w := e.post("calls", mpType, string(mpBody)); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	d := e.target.wait(t)
	if !bytes.Equal(d.body, mpBody) || d.header.Get("Content-Type") != mpType {
		t.Fatalf("delivered %q as %q", d.body, d.header.Get("Content-Type"))
	}
	verifySig(t, d, e.clock.Now())
	m := waitState(t, e, "calls", StateDelivered)
	want := map[string]string{"webhook-id": m.ID, "X-Exogate-Route": "calls", "X-Exogate-Account": testAccount,
		"X-Exogate-Source": "exotel"}
	for k, v := range want {
		if got := d.header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	// Exotel's retry of the same callback is answered and not delivered.
	if w := e.post("calls", mpType, string(mpBody)); w.Code != 200 {
		t.Fatalf("repeat: status %d", w.Code)
	}
	e.post("sms", formType, smsForm)
	if d := e.target.wait(t); !bytes.Equal(d.body, []byte(smsForm)) {
		t.Fatalf("second delivery %q, want the sms report (the repeat was delivered again?)", d.body)
	}
	waitState(t, e, "sms", StateDelivered)
	waitDelivered(t, e.svc, 2)
	if n := e.target.hits.Load(); n != 2 {
		t.Fatalf("target hit %d times, want 2", n)
	}
	// An attempt is counted after its result is committed, so the store
	// can show a message delivered a moment before the counters do.
	c := waitCounters(t, e, func(c Counters) bool { return c.Delivered >= 2 })
	if c.Delivered != 2 || c.Attempts[resDelivered] != 2 || c.Received[recvDuplicate] != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// waitCounters waits until the service's counters satisfy ok and returns
// them: a bound on a hang, not a timing assertion.
func waitCounters(t *testing.T, e *env, ok func(Counters) bool) Counters {
	t.Helper()
	var c Counters
	testutil.Eventually(t, 30*time.Second, "counters never reached the wanted values", func() bool {
		c = e.svc.Counters()
		return ok(c)
	})
	return c
}

// waitState waits until route has one message in st: a bound on a hang,
// not a timing assertion.
func waitState(t *testing.T, e *env, route string, st State) Message {
	t.Helper()
	var m Message
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("no %s message on %s", st, route), func() bool {
		ms, _ := e.q.List(route, st, 10)
		if len(ms) == 1 {
			m = ms[0]
		}
		return len(ms) == 1
	})
	return m
}

// waitDelivered waits until s counted n deliveries (counted just after
// the store records them).
func waitDelivered(t *testing.T, s *Service, n uint64) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%d deliveries not counted", n), func() bool {
		return s.Counters().Delivered >= n
	})
}

// TestRetriesThenRecovery: a target that fails twice gets the callback on
// the third attempt, each attempt signed under the same webhook-id, with
// backoff steps of full jitter below 1s, then 2s.
func TestRetriesThenRecovery(t *testing.T) {
	e := newEnv(t, nil)
	e.target.answer(func(n int, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	e.post("calls", formType, callForm)
	for i, step := range []time.Duration{time.Second, 2 * time.Second} {
		now := e.clock.Now()
		if n := e.deliverDue("calls"); n != 1 {
			t.Fatalf("attempt %d: %d due", i+1, n)
		}
		verifySig(t, e.target.wait(t), now)
		m := e.only("calls", StatePending)
		if m.Attempts != i+1 || m.LastError != "HTTP 500" || m.NextAttempt.Before(now) || m.NextAttempt.After(now.Add(step)) {
			t.Fatalf("after attempt %d: %+v", i+1, m)
		}
		e.advance(step)
	}
	e.deliverDue("calls")
	d := e.target.wait(t)
	verifySig(t, d, e.clock.Now())
	m := e.only("calls", StateDelivered)
	for _, g := range e.target.got {
		if g.header.Get("webhook-id") != m.ID {
			t.Fatalf("webhook-id %q, want %q on every attempt", g.header.Get("webhook-id"), m.ID)
		}
	}
	if c := e.svc.Counters(); c.Attempts[resFailed] != 2 || c.Attempts[resDelivered] != 1 || c.Delivered != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestFullJitter(t *testing.T) {
	for attempts, ceiling := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 5: 32 * time.Second,
		12: 5 * time.Minute, 62: 5 * time.Minute, 1000: 5 * time.Minute} {
		var top time.Duration
		for range 200 {
			d := fullJitter(attempts, 5*time.Minute)
			if d < 0 || d > ceiling {
				t.Fatalf("fullJitter(%d) = %v, want within [0, %v]", attempts, d, ceiling)
			}
			top = max(top, d)
		}
		if top < ceiling/4 {
			t.Fatalf("fullJitter(%d): 200 draws all below %v", attempts, ceiling/4)
		}
	}
}

func TestGoneIsDead(t *testing.T) {
	e := newEnv(t, nil)
	e.target.answer(func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	e.post("calls", formType, callForm)
	e.deliverDue("calls")
	m := e.only("calls", StateDead)
	if m.Attempts != 1 || m.LastError != "410 Gone" {
		t.Fatalf("dead message %+v", m)
	}
	if c := e.svc.Counters(); c.Dead != 1 || c.Attempts[resGone] != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header func(now time.Time) string
	}{
		{"seconds", func(time.Time) string { return "120" }},
		{"date", func(now time.Time) string { return now.Add(120 * time.Second).UTC().Format(http.TimeFormat) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			now := e.clock.Now()
			e.target.answer(func(_ int, w http.ResponseWriter) {
				w.Header().Set("Retry-After", tt.header(now))
				w.WriteHeader(http.StatusServiceUnavailable)
			})
			e.post("calls", formType, callForm)
			e.deliverDue("calls")
			if m := e.only("calls", StatePending); !m.NextAttempt.Equal(now.Add(120 * time.Second)) {
				t.Fatalf("next attempt at %v, want %v", m.NextAttempt, now.Add(120*time.Second))
			}
			e.advance(119 * time.Second)
			if n := e.deliverDue("calls"); n != 0 {
				t.Fatal("attempted before Retry-After")
			}
		})
	}
}

func TestMaxAgeDead(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.Routes[0].Retry = Retry{MaxAge: time.Hour, MaxInterval: time.Minute} })
	e.target.answer(func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
	e.post("calls", formType, callForm)
	e.advance(time.Hour - 30*time.Second)
	e.deliverDue("calls")
	e.only("calls", StatePending)
	e.advance(time.Minute)
	e.deliverDue("calls")
	m := e.only("calls", StateDead)
	if !strings.HasPrefix(m.LastError, "max age reached") || m.Attempts != 2 {
		t.Fatalf("dead message %+v", m)
	}
	if c := e.svc.Counters(); c.Dead != 1 || c.Attempts[resFailed] != 2 {
		t.Fatalf("counters %+v", c)
	}
}

// TestBreakerOneRoute: a failing target opens its route's breaker; the
// other route's deliveries go on.
func TestBreakerOneRoute(t *testing.T) {
	bad := newTarget(t)
	bad.answer(func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	e := newEnv(t, func(c *Config, _ *Deps) {
		c.Routes[0].Target = bad.srv.URL
		c.Breaker.ReadyToTrip = func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 2 }
	})
	e.post("calls", formType, callForm)
	for range 3 {
		e.deliverDue("calls")
		e.advance(time.Hour)
	}
	if n := bad.hits.Load(); n != 2 {
		t.Fatalf("failing target hit %d times, want 2 (then the breaker opens)", n)
	}
	if m := e.only("calls", StatePending); m.LastError != "circuit breaker open" || m.Attempts != 3 {
		t.Fatalf("message %+v", m)
	}
	e.post("sms", formType, smsForm)
	e.deliverDue("sms")
	e.only("sms", StateDelivered)
	if c := e.svc.Counters(); c.Attempts[resBreakerOpen] != 1 || c.Attempts[resFailed] != 2 || c.Delivered != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// TestTimeoutRetried: a target that does not answer in time is retried.
func TestTimeoutRetried(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(_ *Config, d *Deps) { d.Client = &http.Client{Timeout: 50 * time.Millisecond} })
	t.Cleanup(func() { close(release) })
	e.target.answer(func(_ int, w http.ResponseWriter) { <-release })
	e.post("calls", formType, callForm)
	e.deliverDue("calls")
	if m := e.only("calls", StatePending); m.LastError != "timeout" || m.Attempts != 1 {
		t.Fatalf("message %+v", m)
	}
	if c := e.svc.Counters(); c.Attempts[resTimeout] != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// TestTransportErrorRetried: a target that is not there is retried.
func TestTransportErrorRetried(t *testing.T) {
	e := newEnv(t, nil)
	e.target.srv.Close()
	e.post("calls", formType, callForm)
	e.deliverDue("calls")
	if m := e.only("calls", StatePending); m.LastError != "transport error" || m.Attempts != 1 {
		t.Fatalf("message %+v", m)
	}
}

// TestDispatcherRetries runs the dispatchers on the real clock: the retry
// after a failure is found by the dispatcher's timer, not a wake-up.
func TestDispatcherRetries(t *testing.T) {
	e := newEnv(t, func(_ *Config, d *Deps) { d.Clock = nil })
	e.target.answer(func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	e.svc.Start(context.Background())
	e.svc.Start(context.Background()) // a second Start does nothing
	if w := e.post("calls", formType, callForm); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	first, second := e.target.wait(t), e.target.wait(t)
	if first.header.Get("webhook-id") != second.header.Get("webhook-id") {
		t.Fatal("the retry has another webhook-id")
	}
	if m := waitState(t, e, "calls", StateDelivered); m.Attempts != 2 {
		t.Fatalf("message %+v", m)
	}
}

// TestSignVector checks the signature against the Standard Webhooks
// specification's test vector.
func TestSignVector(t *testing.T) {
	signers, err := parseSigningSecrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got, err := sign(signers, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; err != nil || got != want {
		t.Fatalf("sign = %q, %v; want %q", got, err, want)
	}
}
