package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exogate/exogate/internal/metrics"
	"github.com/rs/zerolog"
)

// adminToken is a well-formed admin bearer token.
const adminToken = "5f0c8e2a9b7d4c1e6a3f8b2d7c4e1a9f0b6d3c8e5a2f7b4d1c9e6a3f8b5d2c7e"

// tokenCheck on its own: GET and HEAD pass without a token; other methods
// need the file's token (surrounding white space in the file ignored, the
// scheme case-insensitive); an unreadable, short or non-printable token
// file refuses them with 503, and no answer holds the token.
func TestAdminAuth(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("good", "\n  "+adminToken+"\r\n")
	short := file("short", adminToken[:31])
	spaced := file("spaced", adminToken[:20]+" "+adminToken[20:])
	huge := file("huge", strings.Repeat("a", 5000))
	missing := filepath.Join(dir, "missing")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "passed") })
	tests := []struct {
		name, file, method, auth string
		want                     int
	}{
		{"GET without token", good, "GET", "", 200},
		{"HEAD without token", good, "HEAD", "", 200},
		{"POST with token", good, "POST", "Bearer " + adminToken, 200},
		{"scheme in capitals", good, "POST", "BEARER " + adminToken, 200},
		{"POST without token", good, "POST", "", 401},
		{"PUT without token", good, "PUT", "", 401},
		{"token with a character more", good, "POST", "Bearer " + adminToken + "0", 401},
		{"empty bearer", good, "POST", "Bearer ", 401},
		{"no token file: loopback, open", "", "POST", "", 200},
		{"missing file", missing, "POST", "Bearer " + adminToken, 503},
		{"short token", short, "POST", "Bearer " + adminToken[:31], 503},
		{"token with a space", spaced, "POST", "Bearer " + adminToken, 503},
		{"huge file", huge, "POST", "Bearer " + strings.Repeat("a", 5000), 503},
		{"missing file, GET", missing, "GET", "", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			h := newTokenCheck(func() string { return tc.file }, zerolog.New(&logs)).wrap(ok)
			req := httptest.NewRequest(tc.method, "/-/reload", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("%d %q, want %d", rec.Code, rec.Body.String(), tc.want)
			}
			if tc.want == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", rec.Header().Get("WWW-Authenticate"))
			}
			if strings.Contains(rec.Body.String()+logs.String(), adminToken[:16]) {
				t.Errorf("the answer or the log holds the token")
			}
		})
	}
}

// The extra admin routes (exogate sandbox's /sandbox/) answer what reached
// the upstream, bodies included: with a token file, every method needs the
// token there, reads too, while /status and /metrics stay readable.
func TestExtraAdminRoutesNeedTheTokenToRead(t *testing.T) {
	cfg, getenv := testConfig(t)
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(adminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Admin.TokenFile = tokenFile
	m := metrics.New("test")
	gw, err := newGateway(cfg, getenv, zerolog.Nop(), m, "test", nil, shared{})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.close(context.Background())
	extra := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "requests") })
	admin := adminHandler(func() *gateway { return gw }, m, nil, nil, zerolog.Nop(), map[string]http.Handler{"/sandbox/": extra})
	for _, tc := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/sandbox/requests", "", 401},
		{"HEAD", "/sandbox/requests", "", 401},
		{"GET", "/sandbox/requests", "Bearer " + adminToken, 200},
		{"POST", "/sandbox/faults", "", 401},
		{"POST", "/sandbox/faults", "Bearer " + adminToken, 200},
		{"GET", "/status", "", 200},
		{"GET", "/metrics", "", 200},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s (auth %t): %d, want %d", tc.method, tc.path, tc.auth != "", rec.Code, tc.want)
		}
	}
}
