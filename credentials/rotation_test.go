package credentials

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fileStore makes a store of one account reading key and token files in
// dir, not started: the test reads with Refresh.
func fileStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := New(Config{Accounts: []Spec{{Account: "acme", Source: "file",
		APIKeyFile: filepath.Join(dir, "api_key"), APITokenFile: filepath.Join(dir, "api_token")}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func writePair(t *testing.T, dir, key, token string, mod time.Time) {
	t.Helper()
	for name, v := range map[string]string{"api_key": key, "api_token": token} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
}

// Two replicas reading the same files report the same version, so that a
// rotation can be confirmed across the fleet; a new pair has a new one. The
// pair's creation time is the files' modification time.
func TestFileVersionIsTheSameOnEveryReplica(t *testing.T) {
	dir := t.TempDir()
	made := time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC)
	writePair(t, dir, "key-one", "token-one", made)
	a, b := fileStore(t, dir), fileStore(t, dir)
	// b has read something else first: a counter would now differ.
	writePair(t, dir, "key-zero", "token-zero", made)
	if _, err := b.Refresh(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	writePair(t, dir, "key-one", "token-one", made)
	ca, err := a.Refresh(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.Refresh(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := "file-" + Fingerprint("key-one", "token-one")
	if ca.Version() != want || cb.Version() != want {
		t.Errorf("versions %s and %s, want both %s", ca.Version(), cb.Version(), want)
	}
	if !ca.CreatedAt().Equal(made) {
		t.Errorf("created at %v, want the files' modification time %v", ca.CreatedAt(), made)
	}
	if strings.Contains(want, "token-one") || len(want) != len("file-")+8 {
		t.Errorf("version %q", want)
	}
	if Fingerprint("key-one", "token-two") == Fingerprint("key-one", "token-one") ||
		Fingerprint("key-on", "etoken-one") == Fingerprint("key-one", "token-one") {
		t.Error("different pairs share a fingerprint")
	}
}

// Refresh reads the source at once and reports what is live; a failed read
// keeps the last good credential and says why.
func TestRefresh(t *testing.T) {
	dir := t.TempDir()
	s := fileStore(t, dir)
	if _, err := s.Refresh(context.Background(), "nobody"); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("unknown account: %v", err)
	}
	if c, err := s.Refresh(context.Background(), "acme"); err == nil || c != nil {
		t.Errorf("no files: %v, %v", c, err)
	}
	writePair(t, dir, "key-one", "token-one", time.Now())
	c1, err := s.Refresh(context.Background(), "acme")
	if err != nil || c1 == nil {
		t.Fatalf("Refresh: %v, %v", c1, err)
	}
	if err := os.Remove(filepath.Join(dir, "api_token")); err != nil {
		t.Fatal(err)
	}
	c, err := s.Refresh(context.Background(), "acme")
	if err == nil || !strings.Contains(err.Error(), "api_token: file does not exist") {
		t.Errorf("read failure: %v", err)
	}
	if c != c1 {
		t.Error("a failed read dropped the last good credential")
	}

	env, err := NewStore([]Spec{{Account: "acme", Source: "env", APIKeyEnv: "K", APITokenEnv: "T"}},
		func(k string) string { return map[string]string{"K": "key", "T": "token"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c, err := env.Refresh(context.Background(), "acme"); err != nil || c.Version() != "env" {
		t.Errorf("env: %v, %v", c, err)
	}
}

// After a rotation, Exotel may still refuse the new token and take the old
// one: the store says so from the first such answer until Exotel takes the
// current one.
func TestPreviousAcceptedUntilExotelTakesTheNewToken(t *testing.T) {
	dir := t.TempDir()
	s := fileStore(t, dir)
	writePair(t, dir, "key-one", "token-one", time.Now())
	if _, err := s.Refresh(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	old := http.Header{}
	if _, err := s.Authorize(old, "acme"); err != nil {
		t.Fatal(err)
	}
	s.Accepted("acme", old)
	if !s.PreviousAcceptedAt("acme").IsZero() {
		t.Fatal("the current token's success reported as the previous one's")
	}
	if s.CurrentAcceptedAt("acme").IsZero() {
		t.Fatal("Exotel accepted the current token and the store does not say so")
	}

	writePair(t, dir, "key-one", "token-two", time.Now())
	if _, err := s.Refresh(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	if p := s.Previous("acme"); p == nil || p.Version() != "file-"+Fingerprint("key-one", "token-one") {
		t.Fatalf("previous %v", p)
	}
	if !s.CurrentAcceptedAt("acme").IsZero() {
		t.Fatal("a new credential is reported accepted before Exotel answered a call with it")
	}
	s.Accepted("acme", old)
	if s.PreviousAcceptedAt("acme").IsZero() || !s.CurrentAcceptedAt("acme").IsZero() {
		t.Fatal("Exotel accepted the previous token and the store does not say so")
	}
	s.Accepted("nobody", old) // ignored
	s.Accepted("acme", http.Header{"Authorization": {"Basic c29tZW9uZTplbHNl"}})
	if s.PreviousAcceptedAt("acme").IsZero() {
		t.Fatal("a header of neither credential cleared the state")
	}
	cur := http.Header{}
	if _, err := s.Authorize(cur, "acme"); err != nil {
		t.Fatal(err)
	}
	s.Accepted("acme", cur)
	if at := s.PreviousAcceptedAt("acme"); !at.IsZero() || s.CurrentAcceptedAt("acme").IsZero() {
		t.Errorf("Exotel took the current token, yet the previous one is still reported (%v)", at)
	}

	// A later rotation starts clean.
	s.Accepted("acme", old)
	writePair(t, dir, "key-one", "token-three", time.Now())
	if _, err := s.Refresh(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	if !s.PreviousAcceptedAt("acme").IsZero() {
		t.Error("a swap kept the previous rotation's state")
	}
}
