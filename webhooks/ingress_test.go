package webhooks

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestIngressRefusals(t *testing.T) {
	big := "CallSid=" + callSid + "&Status=completed&Pad=" + strings.Repeat("x", 2000)
	tests := []struct {
		name   string
		method string
		addr   string
		route  string
		token  string
		xff    string
		ct     string
		body   string
		code   int
		reason string
	}{
		{name: "GET", method: http.MethodGet, code: 405, reason: refuseMethod},
		{name: "source outside the ranges", addr: "192.0.2.7:5000", code: 403, reason: refuseSource},
		{name: "forwarded-for from an untrusted peer", addr: "192.0.2.7:5000", xff: "203.0.113.9", code: 403, reason: refuseSource},
		{name: "proxy forwarding an outside source", addr: "10.0.0.2:5000", xff: "203.0.113.9, 192.0.2.7", code: 403, reason: refuseSource},
		{name: "proxy forwarding garbage", addr: "10.0.0.2:5000", xff: "not-an-ip", code: 403, reason: refuseSource},
		{name: "unknown route", route: "nope", code: 404, reason: refuseToken},
		{name: "bad token", token: Token([]byte("other"), "calls"), code: 404, reason: refuseToken},
		{name: "token of another route", token: Token(urlSecret, "sms"), code: 404, reason: refuseToken},
		{name: "no token", token: "-", code: 404, reason: refuseToken},
		{name: "too big", body: big, code: 413, reason: refuseSize},
		{name: "not a callback", body: "hello", code: 400, reason: refusePayload},
		{name: "an sms report on a call route", body: smsForm, code: 400, reason: refusePayload},
		{name: "wrong content type", ct: "text/plain", code: 400, reason: refusePayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			e := newEnv(t, func(c *Config, d *Deps) {
				c.SourceCIDRs = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("127.0.0.0/8")}
				c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
				c.MaxBody = 1024
				d.Log = zerolog.New(&logs)
			})
			method, addr, route, token, ct, body := def(tt.method, "POST"), def(tt.addr, "203.0.113.5:443"),
				def(tt.route, "calls"), def(tt.token, Token(urlSecret, "calls")), def(tt.ct, formType), def(tt.body, callForm)
			if token == "-" {
				token = ""
			}
			r := httptest.NewRequest(method, "/hooks/"+route+"/"+token, strings.NewReader(body))
			r.RemoteAddr = addr
			r.Header.Set("Content-Type", ct)
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			w := httptest.NewRecorder()
			e.svc.Handler().ServeHTTP(w, r)
			if w.Code != tt.code {
				t.Fatalf("status %d, want %d", w.Code, tt.code)
			}
			c := e.svc.Counters()
			if c.Received[tt.reason] != 1 || c.Received[recvAccepted] != 0 {
				t.Fatalf("received %v, want one %q", c.Received, tt.reason)
			}
			if st, _ := e.q.Stats(); st["calls"].Pending != 0 {
				t.Fatalf("a refused callback was stored: %+v", st)
			}
			out := logs.String()
			if !strings.Contains(out, `"reason":"`+tt.reason+`"`) {
				t.Fatalf("refusal not logged with its reason: %s", out)
			}
			if strings.Contains(out, Token(urlSecret, "calls")) || strings.Contains(out, callSid) {
				t.Fatalf("a refusal's log holds the token or the body: %s", out)
			}
		})
	}
}

func def(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func TestIngressAccepts(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) {
		c.SourceCIDRs = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		c.PreviousURLSecret = []byte("last-year")
	})
	mpType, mpBody := multipartBody(t, [][2]string{{"CallSid", callSid}, {"Status", "completed"}})
	steps := []struct {
		name, addr, xff, token, route, ct, body string
		outcome                                 string
	}{
		{"direct", "203.0.113.5:1", "", Token(urlSecret, "calls"), "calls", mpType, string(mpBody), recvAccepted},
		{"repeat", "203.0.113.5:1", "", Token(urlSecret, "calls"), "calls", mpType, string(mpBody), recvDuplicate},
		{"repeat, another body", "203.0.113.5:1", "", Token(urlSecret, "calls"), "calls", formType,
			"CallSid=" + callSid + "&Status=completed", recvVariant},
		{"through a proxy, previous secret", "10.1.2.3:1", "198.51.100.1, 203.0.113.8, 10.9.9.9",
			Token([]byte("last-year"), "sms"), "sms", formType, smsForm, recvAccepted},
		{"json", "[::ffff:203.0.113.5]:1", "", Token(urlSecret, "calls"), "calls", "application/json", callJSON, recvVariant},
	}
	for _, s := range steps {
		h := http.Header{}
		if s.xff != "" {
			h.Set("X-Forwarded-For", s.xff)
		}
		w := e.postFrom(s.addr, s.route, s.token, s.ct, s.body, h)
		if w.Code != 200 {
			t.Fatalf("%s: status %d", s.name, w.Code)
		}
	}
	c := e.svc.Counters()
	if c.Received[recvAccepted] != 2 || c.Received[recvDuplicate] != 1 || c.Received[recvVariant] != 2 {
		t.Fatalf("received %v", c.Received)
	}
	m := e.only("calls", StatePending)
	if !bytes.Equal(m.Body, mpBody) || m.ContentType != mpType || m.Sid != callSid || !m.Terminal ||
		m.Account != testAccount || m.Source != SourceExotel || m.Variants != 2 {
		t.Fatalf("stored %+v", m)
	}
}

// TestIngressStoreError checks that a callback the store could not keep
// is answered 503, which Exotel retries, never 200 or 4xx.
func TestIngressStoreError(t *testing.T) {
	e := newEnv(t, nil)
	e.q.Close()
	if w := e.post("calls", formType, callForm); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", w.Code)
	}
	if c := e.svc.Counters(); c.Received[refuseStore] != 1 {
		t.Fatalf("received %v", c.Received)
	}
}

func TestTokenAndURL(t *testing.T) {
	a, b := Token([]byte("s1"), "calls"), Token([]byte("s1"), "sms")
	if a == b || a != Token([]byte("s1"), "calls") || a == Token([]byte("s2"), "calls") || len(a) != 43 ||
		strings.ContainsAny(a, "+/=") {
		t.Fatalf("tokens %q %q", a, b)
	}
	e := newEnv(t, func(c *Config, _ *Deps) { c.PublicURL = "https://hooks.example.com/" })
	u, err := e.svc.URL("calls")
	if err != nil || u != "https://hooks.example.com/hooks/calls/"+Token(urlSecret, "calls") {
		t.Fatalf("URL = %q, %v", u, err)
	}
	if _, err := e.svc.URL("nope"); err == nil {
		t.Fatal("URL of an unknown route")
	}
}
