package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/exogate/exogate/internal/exotel"
)

// versionAuthorizer sets the account's Basic credentials and says which
// version they are, or fails with err.
type versionAuthorizer struct {
	creds, version string
	err            error
}

var _ Authorizer = (*versionAuthorizer)(nil)

func (a *versionAuthorizer) Authorize(h http.Header, _ string) (string, error) {
	if a.err != nil {
		return "", a.err
	}
	h.Set("Authorization", a.creds)
	return a.version, nil
}

func (a *versionAuthorizer) Ready() bool { return true }

// TestRewriteSetsCredentials: the ReverseProxy's Rewrite writes the
// account's credentials on the outgoing request, in place of whatever the
// caller sent, and notes their version on the exchange; the transport
// sends nothing whose credentials could not be set.
func TestRewriteSetsCredentials(t *testing.T) {
	injected := basic(testKey, testToken)
	var upstreamCalls int
	next := roundTripFunc(func(*http.Request) (*http.Response, error) {
		upstreamCalls++
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	newProxy := func(t *testing.T, a Authorizer) *httputil.ReverseProxy {
		h, err := New(Config{
			Accounts:   []Account{{SID: "acme", API: &url.URL{Scheme: "https", Host: "api.exotel.com"}, CCM: &url.URL{Scheme: "https", Host: "ccm-api.exotel.com"}}},
			Authorizer: a,
			Transport:  next,
		})
		if err != nil {
			t.Fatal(err)
		}
		return h.accounts["acme"].upstreams[exotel.HostAPI].proxies[exotel.Buckets()[0]]
	}
	rewritten := func(rp *httputil.ReverseProxy, ex *exchange) *http.Request {
		in := httptest.NewRequest("GET", "/v1/Accounts/acme/Calls.json", nil)
		in.Header.Set("Authorization", basic("caller", "caller-secret"))
		in.Header.Set("Proxy-Authorization", basic("caller", "caller-secret"))
		if ex != nil {
			in = in.WithContext(withExchange(in.Context(), ex))
		}
		pr := &httputil.ProxyRequest{In: in, Out: in.Clone(in.Context())}
		rp.Rewrite(pr)
		return pr.Out
	}

	t.Run("set in Rewrite", func(t *testing.T) {
		rp := newProxy(t, &versionAuthorizer{creds: injected, version: "v7"})
		ex := &exchange{}
		out := rewritten(rp, ex)
		if got := out.Header.Values("Authorization"); len(got) != 1 || got[0] != injected {
			t.Errorf("outgoing Authorization %q, want only the account's", got)
		}
		if got := out.Header.Get("Proxy-Authorization"); got != "" {
			t.Errorf("the caller's Proxy-Authorization went on: %q", got)
		}
		if ex.credVersion != "v7" || ex.credErr != nil {
			t.Errorf("exchange noted version %q, error %v", ex.credVersion, ex.credErr)
		}
	})

	t.Run("none to set: refused, nothing sent", func(t *testing.T) {
		unavailable := errors.New("no credentials for acme yet")
		rp := newProxy(t, &versionAuthorizer{err: unavailable})
		ex := &exchange{}
		out := rewritten(rp, ex)
		if got := out.Header.Get("Authorization"); got != "" {
			t.Errorf("outgoing Authorization %q with no credentials", got)
		}
		upstreamCalls = 0
		_, err := rp.Transport.RoundTrip(out)
		if !errors.Is(err, errCredentials) || !errors.Is(err, unavailable) {
			t.Errorf("transport error %v, want credentials unavailable", err)
		}
		if upstreamCalls != 0 {
			t.Errorf("sent upstream %d times without credentials", upstreamCalls)
		}
	})

	t.Run("a request the handler did not rewrite is not sent", func(t *testing.T) {
		rp := newProxy(t, &versionAuthorizer{creds: injected, version: "v7"})
		out := rewritten(rp, nil)
		upstreamCalls = 0
		if _, err := rp.Transport.RoundTrip(out); !errors.Is(err, errCredentials) {
			t.Errorf("transport error %v, want credentials unavailable", err)
		}
		if upstreamCalls != 0 {
			t.Errorf("sent upstream %d times", upstreamCalls)
		}
	})
}

// TestOutgoingRequestCarriesInjectedCredentials: what reaches Exotel
// carries the account's Basic credentials, once, and nothing the caller
// sent to authenticate itself.
func TestOutgoingRequestCarriesInjectedCredentials(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []http.Header
	)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	target, _ := url.Parse(up.URL)
	injected := basic(testKey, testToken)
	h, err := New(Config{
		Accounts:   []Account{{SID: "acme", API: target, CCM: target}},
		Authorizer: &versionAuthorizer{creds: injected, version: "v1"},
		Transport:  tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()

	for method, path := range map[string]string{"GET": "/v1/Accounts/acme/Calls.json", "POST": "/v1/Accounts/acme/Calls/connect.json"} {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader("From=1&To=2")
		}
		req, _ := http.NewRequestWithContext(context.Background(), method, front.URL+path, body)
		req.Header.Set("Authorization", basic("caller", "caller-secret"))
		req.Header.Set("Proxy-Authorization", "Bearer caller-token")
		resp, err := front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", method, resp.StatusCode)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("upstream saw %d requests, want 2", len(seen))
	}
	for i, hdr := range seen {
		if got := hdr.Values("Authorization"); len(got) != 1 || got[0] != injected {
			t.Errorf("request %d carried Authorization %q, want only the account's", i+1, got)
		}
		if got := hdr.Get("Proxy-Authorization"); got != "" {
			t.Errorf("request %d carried the caller's Proxy-Authorization %q", i+1, got)
		}
	}
}
