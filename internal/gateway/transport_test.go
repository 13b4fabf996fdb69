package gateway

import (
	"bytes"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/h1"
)

func TestUpstreamClientChoice(t *testing.T) {
	api, _ := url.Parse("https://api.exotel.com")
	ccm, _ := url.Parse("https://ccm-api.exotel.com")
	ups := []*url.URL{api, ccm}
	none := func(*http.Request) (*url.URL, error) { return nil, nil }
	egress := func(r *http.Request) (*url.URL, error) {
		if r.URL.Host == "ccm-api.exotel.com" {
			return url.Parse("http://user:secret@egress.internal:3128")
		}
		return nil, nil
	}
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	if c := upstreamClient("http1", ups, none, log); c != "http1" {
		t.Errorf("no proxy: %s, want http1", c)
	}
	if c := upstreamClient("net/http", ups, none, log); c != "net/http" {
		t.Errorf("configured net/http: %s", c)
	}
	if c := upstreamClient("http1", ups, egress, log); c != "net/http" {
		t.Errorf("a proxy for one upstream: %s, want net/http", c)
	}
	if !strings.Contains(logs.String(), "egress.internal") || strings.Contains(logs.String(), "secret") {
		t.Errorf("the switch must be logged, with the proxy's password redacted: %s", logs.String())
	}

	// The default configuration gets exogate's own client.
	cfg := config.Default()
	tr, err := newTransport(cfg.Upstream, ups, log)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	fast, ok := tr.(*h1.Transport)
	if !ok {
		t.Fatalf("default transport %T, want *h1.Transport", tr)
	}
	if fast.ResponseHeaderTimeout != cfg.Upstream.Timeout || fast.MaxIdleConnsPerHost != cfg.Upstream.MaxIdleConnsPerHost ||
		fast.IdleConnTimeout != cfg.Upstream.IdleConnTimeout || fast.TLSClientConfig.MinVersion == 0 {
		t.Errorf("settings not carried over: %+v", fast)
	}
	cfg.Upstream.Client = "net/http"
	tr, err = newTransport(cfg.Upstream, ups, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.(*http.Transport); !ok {
		t.Fatalf("upstream.client net/http gave %T", tr)
	}
}

// In net/http mode the upstream is spoken to in HTTP/1.1 only, even when it
// offers HTTP/2: Go's HTTP/2 client may send a bodiless POST again after a
// stream reset, and a call must never be placed twice.
func TestNetHTTPUpstreamIsHTTP11(t *testing.T) {
	protos := make(chan string, 1)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	defer up.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	der := up.Certificate().Raw
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Upstream.Client = "net/http"
	cfg.Upstream.CAFile = caFile
	u, _ := url.Parse(up.URL)
	tr, err := newTransport(cfg.Upstream, []*url.URL{u}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", up.URL+"/v1/Accounts/acme/Calls/connect.json", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if p := <-protos; p != "HTTP/1.1" {
		t.Errorf("upstream spoken to in %s, want HTTP/1.1", p)
	}
}
