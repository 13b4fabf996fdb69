package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/credentials"
	"github.com/exogate/exogate/internal/metrics"
)

// memUpstream answers every request at once with a small Exotel body, in
// memory, so that a benchmark measures the gateway alone.
type memUpstream struct{}

func (memUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	return &http.Response{
		StatusCode:    200,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(`{"Call":{"Sid":"x","Status":"queued"}}`)),
		ContentLength: 38,
		Request:       r,
	}, nil
}

func benchHandler(b *testing.B, log zerolog.Logger, m ...*metrics.Metrics) *Handler {
	b.Helper()
	store, err := credentials.NewStore([]credentials.Spec{{Account: "acme", Source: "env", APIKeyEnv: "K", APITokenEnv: "T"}},
		func(k string) string { return map[string]string{"K": testKey, "T": testToken}[k] })
	if err != nil {
		b.Fatal(err)
	}
	api, _ := url.Parse("https://api.exotel.com")
	ccm, _ := url.Parse("https://ccm-api.exotel.com")
	h, err := New(Config{
		Accounts:   []Account{{SID: "acme", API: api, CCM: ccm}},
		Authorizer: store,
		Transport:  memUpstream{},
		Logger:     log,
		Metrics:    append(m, nil)[0],
	})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkHandler is one whole request through the handler: classify,
// breaker, rewrite, credentials, ReverseProxy copy, access log.
func BenchmarkHandler(b *testing.B) {
	for _, bc := range []struct {
		name    string
		log     zerolog.Logger
		metrics *metrics.Metrics
	}{
		{"nolog", zerolog.Nop(), nil},
		{"jsonlog", zerolog.New(io.Discard), nil},
		{"nolog+metrics", zerolog.Nop(), metrics.New("bench")},
		{"jsonlog+metrics", zerolog.New(io.Discard), metrics.New("bench")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := benchHandler(b, bc.log, bc.metrics)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("GET", "/v1/Accounts/acme/Calls/abc.json?x=1", nil)
					req.Header.Set("Authorization", "Basic c3RhbGU6c3RhbGU=")
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}

// BenchmarkRefused is a request the gateway answers itself (unknown account).
func BenchmarkRefused(b *testing.B) {
	h := benchHandler(b, zerolog.Nop())
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/v2/accounts/stranger/calls", nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 404 {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkRewrite is the header and URL rewrite plus credential injection,
// on a request ReverseProxy has already cloned.
func BenchmarkRewrite(b *testing.B) {
	target, _ := url.Parse("https://api.exotel.com")
	store, _ := credentials.NewStore([]credentials.Spec{{Account: "acme", Source: "env", APIKeyEnv: "K", APITokenEnv: "T"}},
		func(k string) string { return map[string]string{"K": testKey, "T": testToken}[k] })
	in := httptest.NewRequest("POST", "/v1/Accounts/acme/Calls/connect.json?From=1", nil)
	out := in.Clone(in.Context())
	hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "User-Agent": {"exotel-python/1.0"}}
	pr := &httputil.ProxyRequest{In: in, Out: out}
	u := *in.URL
	b.ReportAllocs()
	for b.Loop() {
		*out.URL = u
		hdr["Authorization"] = []string{"Basic c3RhbGU6c3RhbGU="}
		hdr["Idempotency-Key"] = []string{"k"}
		out.Header = hdr
		rewrite(pr, target)
		if _, err := store.Authorize(out.Header, "acme"); err != nil {
			b.Fatal(err)
		}
	}
	if out.URL.Opaque != "/v1/Accounts/acme/Calls/connect.json" || out.Host != "api.exotel.com" {
		b.Fatalf("rewrite: %q %q", out.URL.Opaque, out.Host)
	}
}

// BenchmarkBreakerAdmit is the breaker's admit-and-report around one
// upstream exchange (the exchange itself is an in-memory answer).
func BenchmarkBreakerAdmit(b *testing.B) {
	resp := &http.Response{StatusCode: 200, Body: http.NoBody}
	tr := &upstreamTransport{breaker: newBreaker("bench", BreakerSettings{}, time.Now), replayer: replayer{
		account: "acme",
		bucket:  "voice_v1",
		now:     time.Now,
		next:    roundTripFunc(func(*http.Request) (*http.Response, error) { return resp, nil }),
	}}
	req := httptest.NewRequest("GET", "https://api.exotel.com/v1/Accounts/acme/Calls.json", nil)
	req = req.WithContext(withExchange(req.Context(), &exchange{credVersion: "v1"}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.RoundTrip(req); err != nil {
			b.Fatal(err)
		}
	}
}
