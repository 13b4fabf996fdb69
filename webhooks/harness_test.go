package webhooks

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.Set(time.Now().Truncate(time.Second))
	return c
}

// advance moves the env's clock on by d.
func (e *env) advance(d time.Duration) { e.clock.Set(e.clock.Now().Add(d)) }

// delivery is what a target received.
type delivery struct {
	header http.Header
	body   []byte
}

// target is an internal service on 127.0.0.1 that answers with the codes
// of its script, then 200, and records what it received.
type target struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []delivery
	next    func(n int, w http.ResponseWriter) // nil: 200
	ch      chan delivery
	started chan struct{} // a request arrived
	hits    atomic.Int64
}

func newTarget(t *testing.T) *target {
	tg := &target{ch: make(chan delivery, 100), started: make(chan struct{}, 100)}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d := delivery{header: r.Header.Clone(), body: body}
		n := int(tg.hits.Add(1))
		tg.started <- struct{}{}
		tg.mu.Lock()
		tg.got = append(tg.got, d)
		answer := tg.next
		tg.mu.Unlock()
		if answer != nil {
			answer(n, w)
		}
		tg.ch <- d
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

// answer sets how the target answers its n'th request (1-based).
func (tg *target) answer(f func(n int, w http.ResponseWriter)) {
	tg.mu.Lock()
	tg.next = f
	tg.mu.Unlock()
}

// wait returns the next delivery, failing the test after a generous
// bound (a hang, not a timing assertion).
func (tg *target) wait(t *testing.T) delivery {
	t.Helper()
	select {
	case d := <-tg.ch:
		return d
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery reached the target")
		return delivery{}
	}
}

const (
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testAccount = "acme"
)

var urlSecret = []byte("url-secret-for-tests")

// env is a service on a store, with a clock and a target.
type env struct {
	t      *testing.T
	svc    *Service
	q      queue
	clock  *fakeClock
	target *target
}

// newEnv builds a service with one call route "calls" and one sms route
// "sms", both to one target; edit adjusts the config and deps.
func newEnv(t *testing.T, edit func(*Config, *Deps)) *env {
	t.Helper()
	e := &env{t: t, clock: newFakeClock(), target: newTarget(t)}
	cfg := Config{
		PublicURL: "https://hooks.example.com",
		URLSecret: urlSecret,
		Routes: []Route{
			{Name: "calls", Account: testAccount, Kind: KindCall, Target: e.target.srv.URL + "/exotel/calls", SigningSecret: testSecret},
			{Name: "sms", Account: testAccount, Kind: KindSMS, Target: e.target.srv.URL + "/exotel/sms", SigningSecret: testSecret},
		},
		Breaker: gobreaker.Settings{Timeout: time.Hour},
	}
	deps := Deps{Log: zerolog.New(zerolog.NewTestWriter(t)), Clock: e.clock.Now, Replica: "r1"}
	if edit != nil {
		edit(&cfg, &deps)
	}
	rc, err := prepare(cfg, deps, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.q = newTestStore(t, deps.Clock)
	e.svc = newService(rc, deps, e.q)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.svc.Close(ctx)
	})
	return e
}

// waitStarted waits until a request has reached the target.
func (tg *target) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-tg.started:
	case <-time.After(30 * time.Second):
		t.Fatal("no request reached the target")
	}
}

// httptestPost posts a form callback to s's listener with the right token.
func httptestPost(s *Service, route, body string) int {
	r := httptest.NewRequest(http.MethodPost, "/hooks/"+route+"/"+Token(urlSecret, route), strings.NewReader(body))
	r.Header.Set("Content-Type", formType)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w.Code
}

// post sends a callback to the listener as Exotel would, from addr.
func (e *env) post(route, ct, body string) *httptest.ResponseRecorder {
	return e.postFrom("127.0.0.1:40000", route, Token(urlSecret, route), ct, body, nil)
}

func (e *env) postFrom(addr, route, token, ct, body string, h http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/hooks/"+route+"/"+token, strings.NewReader(body))
	r.RemoteAddr = addr
	r.Header.Set("Content-Type", ct)
	for k, v := range h {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	e.svc.Handler().ServeHTTP(w, r)
	return w
}

// deliverDue makes one attempt at each of route's due messages, in this
// goroutine, as the dispatcher would.
func (e *env) deliverDue(route string) int {
	e.t.Helper()
	msgs, err := e.q.Due(route, e.clock.Now(), 100, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range msgs {
		e.svc.attempt(context.Background(), m)
	}
	return len(msgs)
}

// only returns route's one message in state st.
func (e *env) only(route string, st State) Message {
	e.t.Helper()
	ms, err := e.q.List(route, st, 10)
	if err != nil || len(ms) != 1 {
		e.t.Fatalf("%s messages of %s: %d, %v; want 1", st, route, len(ms), err)
	}
	return ms[0]
}

// verifySig checks a delivery's Standard Webhooks signature with the
// library's verifier, and that its timestamp is the clock's.
func verifySig(t *testing.T, d delivery, at time.Time) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.VerifyIgnoringTimestamp(d.body, d.header); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if ts := d.header.Get("webhook-timestamp"); ts != strconvI(at.Unix()) {
		t.Fatalf("webhook-timestamp %s, want %d", ts, at.Unix())
	}
}
