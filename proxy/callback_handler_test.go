package proxy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/exogate/exogate/internal/callers"
	"github.com/exogate/exogate/internal/exotel"
)

// hooks is a CallbackResolver with one call route and one SMS route of acme.
type hooks struct {
	mu     sync.Mutex
	expect []string // account/route/sid
}

func (h *hooks) CallbackURL(account, kind, route string) (string, error) {
	switch {
	case account == "acme" && kind == "call" && route == "calls":
		return "https://hooks.example.com/hooks/calls/T0k3n", nil
	case account == "acme" && kind == "sms" && route == "sms":
		return "https://hooks.example.com/hooks/sms/T0k3n", nil
	}
	return "", errors.New("no " + kind + " route " + route + " for account " + account)
}

func (h *hooks) Expect(account, route, sid string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expect = append(h.expect, account+"/"+route+"/"+sid)
}

func (h *hooks) expected() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.expect...)
}

func TestHandlerFillsCallbackURLs(t *testing.T) {
	hk := &hooks{}
	r := newRig(t, func(c *Config) { c.Callbacks = hk })
	var answers []string
	for _, tc := range []struct{ path, body, want string }{
		{"/v1/Accounts/acme/Calls/connect.json", "From=1&To=2&StatusCallback=exogate%3A%2F%2Fcalls", "https://hooks.example.com/hooks/calls/T0k3n"},
		{"/v1/Accounts/acme/Calls/connect", "From=1&To=2&StatusCallback=exogate://calls", "https://hooks.example.com/hooks/calls/T0k3n"},
		{"/v1/Accounts/acme/Sms/send.json", "From=1&To=2&Body=hi&StatusCallback=exogate%3A%2F%2Fsms", "https://hooks.example.com/hooks/sms/T0k3n"},
	} {
		r.reset()
		req, _ := http.NewRequest("POST", r.front.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, body := r.do(req)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tc.path, resp.StatusCode, body)
		}
		answers = append(answers, string(body))
		got := r.only()
		q, _ := url.ParseQuery(string(got.Body))
		if q.Get("StatusCallback") != tc.want || q.Get("From") != "1" {
			t.Errorf("%s: Exotel received %s", tc.path, got.Body)
		}
		if got.Header.Get("Content-Length") != "" && got.Header.Get("Content-Length") != strconv.Itoa(len(got.Body)) {
			t.Errorf("%s: Content-Length %s for %d bytes", tc.path, got.Header.Get("Content-Length"), len(got.Body))
		}
	}
	// The calls placed (JSON and XML answers) were announced with their Sid;
	// the SMS was not.
	got := hk.expected()
	if len(got) != 2 {
		t.Fatalf("Expect calls: %v", got)
	}
	for i, e := range got {
		sid, ok := strings.CutPrefix(e, "acme/calls/")
		if !ok || sid == "" || !strings.Contains(answers[i], sid) {
			t.Errorf("Expect call %q, not the Sid Exotel answered: %s", e, answers[i])
		}
	}
}

func TestHandlerRefusesUnknownCallbackRoutes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hooks CallbackResolver
		path  string
		body  string
		shape exotel.Shape
	}{
		{"unknown route", &hooks{}, "/v1/Accounts/acme/Calls/connect.json", "StatusCallback=exogate%3A%2F%2Fbilling", exotel.ShapeJSON},
		{"sms route for a call", &hooks{}, "/v1/Accounts/acme/Calls/connect", "StatusCallback=exogate%3A%2F%2Fsms", exotel.ShapeXML},
		{"another account's route", &hooks{}, "/v1/Accounts/acme1m/Sms/send.json", "StatusCallback=exogate%3A%2F%2Fsms", exotel.ShapeJSON},
		{"no webhooks configured", nil, "/v1/Accounts/acme/Calls/connect.json", "StatusCallback=exogate%3A%2F%2Fcalls", exotel.ShapeJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(c *Config) {
				if tc.hooks != nil {
					c.Callbacks = tc.hooks
				}
			})
			req, _ := http.NewRequest("POST", r.front.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, body := r.do(req)
			assertShape(t, resp, body, tc.shape, http.StatusBadRequest, KindBadRequest)
			if !strings.Contains(string(body), "exogate://") && !strings.Contains(string(body), "StatusCallback") {
				t.Errorf("the error does not say what is wrong: %s", body)
			}
			if n := r.total(); n != 0 {
				t.Errorf("%d requests reached Exotel", n)
			}
		})
	}
}

func TestOperatorRequestsSkipCallerRights(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Callers = denyAll{} })
	req := httptest.NewRequest("GET", "/v1/Accounts/acme/Calls/CA1.json", nil)
	rec := httptest.NewRecorder()
	r.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("a caller without identity: %d, want 401", rec.Code)
	}
	rec = httptest.NewRecorder()
	r.handler.ServeHTTP(rec, req.WithContext(AsOperator(req.Context())))
	if rec.Code != http.StatusOK || r.total() != 1 {
		t.Fatalf("the gateway's own request: %d, %d upstream", rec.Code, r.total())
	}
	if got := r.only().Header.Get("Authorization"); got != basic(testKey, testToken) {
		t.Errorf("sent with %q, want the account's credentials", got)
	}
	if !strings.Contains(r.logs.String(), `"client":"exogate"`) {
		t.Errorf("access line does not name the operator: %s", r.logs.String())
	}
}

// denyAll identifies no one.
type denyAll struct{}

func (denyAll) Identify(*http.Request) (*callers.Client, error) {
	return nil, callers.ErrUnauthenticated
}
