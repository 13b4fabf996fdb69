package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/credentials"
	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/metrics"
)

// POST /-/refresh?account=SID reads the account's files at once and
// answers its credential status: the version, when it was made (the files'
// modification time), since when in use, and whether it is past
// rotation.max_age. Bad requests change nothing.
func TestRefreshEndpoint(t *testing.T) {
	dir := t.TempDir()
	made := time.Now().Add(-100 * 24 * time.Hour).Truncate(time.Second)
	write := func(key, token string) {
		for name, v := range map[string]string{"k": key, "t": token} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, made, made); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("key-one-0123", "token-one-0123")
	gw, m, sid := fileGateway(t, dir, 0)
	// Each refresh comes a minute after the one before: none is paced.
	clock := time.Now()
	gw.refreshes.now = func() time.Time { clock = clock.Add(time.Minute); return clock }
	admin := adminHandler(func() *gateway { return gw }, m, nil, nil, zerolog.Nop(), nil)
	refresh := func(query string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/-/refresh"+query, nil))
		var body map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body
	}
	for q, want := range map[string]int{"": 400, "?account=nobody": 404} {
		if code, _ := refresh(q); code != want {
			t.Errorf("refresh%s: %d, want %d", q, code, want)
		}
	}
	if gw.store.Current(sid) != nil {
		t.Fatal("a refused refresh read the source")
	}

	code, body := refresh("?account=" + strings.ToUpper(sid))
	cr, _ := body["credentials"].(map[string]any)
	want := "file-" + credentials.Fingerprint("key-one-0123", "token-one-0123")
	if code != 200 || cr["version"] != want || cr["created_at"] != made.UTC().Format(time.RFC3339) ||
		cr["max_age_exceeded"] != true || cr["in_use_since"] == nil {
		t.Errorf("refresh: %d %v", code, body)
	}

	write("key-one-0123", "token-two-0123")
	if code, body = refresh("?account=" + sid); code != 200 {
		t.Fatalf("second refresh: %d %v", code, body)
	}
	st := gw.status().Accounts[0].Credentials
	if st.Version != "file-"+credentials.Fingerprint("key-one-0123", "token-two-0123") || st.PreviousVersion != want || st.PreviousAcceptedAt != nil {
		t.Errorf("status after the rotation: %+v", st)
	}

	if err := os.Remove(filepath.Join(dir, "t")); err != nil {
		t.Fatal(err)
	}
	code, body = refresh("?account=" + sid)
	cr, _ = body["credentials"].(map[string]any)
	if code != http.StatusBadGateway || !strings.Contains(body["error"].(string), "file does not exist") || cr["version"] != st.Version {
		t.Errorf("refresh with the token file gone: %d %v", code, body)
	}
}

// Each POST /-/refresh reads the account's source and may send Exotel's
// credential test: per account, one is served per
// rotation.min_forced_refresh, and one sooner is answered 429 with
// Retry-After and the status as it is, without reading the source.
func TestRefreshEndpointPaced(t *testing.T) {
	dir := t.TempDir()
	write := func(token string) {
		for name, v := range map[string]string{"k": "key-one-0123", "t": token} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("token-one-0123")
	gw, m, sid := fileGateway(t, dir, 3*time.Second)
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	now := t0
	gw.refreshes.now = func() time.Time { return now }
	admin := adminHandler(func() *gateway { return gw }, m, nil, nil, zerolog.Nop(), nil)
	refresh := func() (*httptest.ResponseRecorder, string) {
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/-/refresh?account="+sid, nil))
		var body struct {
			Credentials CredentialStatus `json:"credentials"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec, body.Credentials.Version
	}
	one := "file-" + credentials.Fingerprint("key-one-0123", "token-one-0123")
	two := "file-" + credentials.Fingerprint("key-one-0123", "token-two-0123")
	if rec, v := refresh(); rec.Code != 200 || v != one {
		t.Fatalf("first refresh: %d %s", rec.Code, rec.Body)
	}
	write("token-two-0123")
	now = t0.Add(time.Second)
	rec, v := refresh()
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "2" || v != one ||
		!strings.Contains(rec.Body.String(), "rotation.min_forced_refresh") {
		t.Errorf("refresh 1s later: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if gw.store.Current(sid).Version() != one {
		t.Error("a paced refresh read the source")
	}
	now = t0.Add(3 * time.Second)
	if rec, v := refresh(); rec.Code != 200 || v != two {
		t.Errorf("refresh 3s later: %d %s", rec.Code, rec.Body)
	}
}

// fileGateway is a gateway whose account reads its pair from the files k
// and t in dir, with rotation.min_forced_refresh minRefresh when not 0.
func fileGateway(t *testing.T, dir string, minRefresh time.Duration) (*gateway, *metrics.Metrics, string) {
	t.Helper()
	cfg, getenv := testConfig(t)
	cfg.Accounts[0].Credentials = config.Credentials{Source: "file", APIKeyFile: filepath.Join(dir, "k"), APITokenFile: filepath.Join(dir, "t")}
	if minRefresh != 0 {
		cfg.Rotation.MinForcedRefresh = minRefresh
	}
	m := metrics.New("test")
	gw, err := newGateway(cfg, getenv, zerolog.Nop(), m, "test", nil, shared{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.close(context.Background()) })
	return gw, m, strings.ToLower(cfg.Accounts[0].SID)
}
