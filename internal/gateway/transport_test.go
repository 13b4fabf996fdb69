package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/metrics"
)

// The upstream transport carries the upstream section's settings, and
// speaks to an HTTP(S)_PROXY when one applies.
func TestTransportSettings(t *testing.T) {
	cfg := config.Default()
	tr, err := newTransport(cfg.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	if tr.ResponseHeaderTimeout != cfg.Upstream.Timeout || tr.MaxIdleConnsPerHost != cfg.Upstream.MaxIdleConnsPerHost ||
		tr.IdleConnTimeout != cfg.Upstream.IdleConnTimeout || tr.TLSHandshakeTimeout != cfg.Upstream.TLSHandshakeTimeout ||
		tr.TLSClientConfig.MinVersion < tls.VersionTLS12 {
		t.Errorf("settings not carried over: %+v", tr)
	}
	if tr.Proxy == nil {
		t.Error("HTTPS_PROXY/HTTP_PROXY are not honoured")
	}
	if tr.Protocols == nil || tr.Protocols.HTTP2() || !tr.Protocols.HTTP1() {
		t.Errorf("protocols %v, want HTTP/1.1 only", tr.Protocols)
	}
}

// upstream.client still loads but has no effect: http1 gets Go's transport
// and a warning, once, not again on a reload that keeps it.
func TestUpstreamClientHasNoEffect(t *testing.T) {
	for _, client := range []string{"http1", "net/http"} {
		t.Run(strings.ReplaceAll(client, "/", "_"), func(t *testing.T) {
			cfg, getenv := testConfig(t)
			cfg.Upstream.Client = client
			var logs bytes.Buffer
			log := zerolog.New(&logs)
			gw, err := newGateway(cfg, getenv, log, metrics.New("test"), "test", nil, shared{})
			if err != nil {
				t.Fatal(err)
			}
			defer gw.close(context.Background())
			warned := strings.Count(logs.String(), "upstream.client has no effect")
			if want := map[string]int{"http1": 1, "net/http": 0}[client]; warned != want {
				t.Errorf("%d warnings, want %d: %s", warned, want, logs.String())
			}
			next, err := newGateway(cfg, getenv, log, metrics.New("test"), "test", gw, shared{})
			if err != nil {
				t.Fatal(err)
			}
			defer next.close(context.Background())
			if n := strings.Count(logs.String(), "upstream.client has no effect"); n != warned {
				t.Errorf("a reload keeping upstream.client warned again: %s", logs.String())
			}
			if st := next.status(); st.Upstream.Client != "net/http" || st.Upstream.IdleConns != nil {
				t.Errorf("/status upstream %+v, want client net/http and no idle_conns", st.Upstream)
			}
		})
	}
}

// The upstream is spoken to in HTTP/1.1 only, even when it
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
	cfg.Upstream.CAFile = caFile
	tr, err := newTransport(cfg.Upstream)
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
