package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/metrics"
)

// /readyz answers the same on the proxy listener and on the admin listener,
// in each state.
func TestReadyzSameOnBothListeners(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	cases := []struct {
		name       string
		creds      *config.Credentials // nil: the test configuration's env pair
		drain      bool
		wantStatus int
		wantBody   string
	}{
		{name: "ready", wantStatus: http.StatusOK, wantBody: "ok\n"},
		{name: "credentials not ready", creds: &config.Credentials{Source: "file", APIKeyFile: missing, APITokenFile: missing},
			wantStatus: http.StatusServiceUnavailable, wantBody: "credentials unavailable\n"},
		{name: "draining", drain: true, wantStatus: http.StatusServiceUnavailable, wantBody: "draining\n"},
		{name: "draining without credentials", creds: &config.Credentials{Source: "file", APIKeyFile: missing, APITokenFile: missing},
			drain: true, wantStatus: http.StatusServiceUnavailable, wantBody: "draining\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, getenv := testConfig(t)
			if tc.creds != nil {
				cfg.Accounts[0].Credentials = *tc.creds
			}
			m := metrics.New("test")
			gw, err := newGateway(cfg, getenv, zerolog.Nop(), m, "test", nil, shared{})
			if err != nil {
				t.Fatal(err)
			}
			defer gw.close(context.Background())
			if tc.drain {
				gw.SetDraining()
			}
			admin := adminHandler(func() *gateway { return gw }, m, nil, nil, zerolog.Nop(), nil)
			for name, h := range map[string]http.Handler{"proxy": gw, "admin": admin} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
				if rec.Code != tc.wantStatus || rec.Body.String() != tc.wantBody {
					t.Errorf("%s listener: %d %q, want %d %q", name, rec.Code, rec.Body.String(), tc.wantStatus, tc.wantBody)
				}
			}
			if ready, _ := gw.Readiness(); gw.status().Ready != ready || ready != (tc.wantStatus == http.StatusOK) {
				t.Errorf("/status ready %v, Readiness %v", gw.status().Ready, ready)
			}
		})
	}
}
