package gateway

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/testutil"
)

// TestCallbackURLHidesOtherAccountsRoutes checks that a caller naming
// another account's webhook route in exogate:// learns nothing of it: the
// refusal is the one for a route that does not exist, and does not name
// the route's account.
func TestCallbackURLHidesOtherAccountsRoutes(t *testing.T) {
	h := &hooks{}
	h.setRoutes(config.Webhooks{Routes: []config.WebhookRoute{
		{Name: "calls", Account: "acme", Kind: "call"},
	}})
	_, other := h.CallbackURL("globex", "call", "calls")
	_, missing := h.CallbackURL("globex", "call", "nope")
	if other == nil || missing == nil {
		t.Fatalf("errors %v, %v; want refusals", other, missing)
	}
	if strings.Replace(other.Error(), "calls", "nope", 1) != missing.Error() {
		t.Fatalf("another account's route: %q; a missing one: %q", other, missing)
	}
	if strings.Contains(other.Error(), "acme") {
		t.Fatalf("the refusal names the route's account: %q", other)
	}
}

// TestHooksStartLogsNoTargetCredentials checks that a route target's user
// information (basic-auth credentials, which Go's client sends) stays out
// of the start-up log.
func TestHooksStartLogsNoTargetCredentials(t *testing.T) {
	const password = "hunter2-target-password"
	cfg := config.Config{
		Server: config.Server{ReadHeaderTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, IdleTimeout: time.Second},
		Webhooks: config.Webhooks{
			Listen: "127.0.0.1:0", PublicURL: "https://hooks.example.com", AllowInsecureHTTP: true,
			URLSecretEnv: "URL_SECRET", Store: config.WebhookStore{Path: filepath.Join(t.TempDir(), "hooks.db")},
			Routes: []config.WebhookRoute{{
				Name: "calls", Account: "acme", Kind: "call", Target: "http://svc:" + password + "@127.0.0.1:9/exotel",
				SigningSecretEnv: "SIGNING", Concurrency: 1,
				Retry: config.WebhookRetry{MaxAge: time.Hour, MaxInterval: time.Minute},
			}},
		},
	}
	env := map[string]string{"URL_SECRET": strings.Repeat("u", 64), "SIGNING": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	logs := &testutil.SyncBuffer{}
	log := zerolog.New(logs)
	h, err := newHooks(cfg, func(k string) string { return env[k] }, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop, errc := make(chan struct{}), make(chan error, 1)
	defer close(stop)
	if err := h.start(context.Background(), cfg, stop, errc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.close(ctx); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "webhooks listening") || !strings.Contains(out, "127.0.0.1:9/exotel") {
		t.Fatalf("no start-up line with the route's target: %s", out)
	}
	if strings.Contains(out, password) {
		t.Fatalf("the target's password is in the log: %s", out)
	}
}
