package webhooks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func validConfig() Config {
	return Config{
		PublicURL: "https://hooks.example.com",
		URLSecret: urlSecret,
		Routes: []Route{{Name: "calls", Account: testAccount, Kind: KindCall, Target: "http://127.0.0.1:9/x",
			SigningSecret: testSecret}},
	}
}

func TestOpenValidates(t *testing.T) {
	lookup := (&fakeExotel{}).lookup
	for _, tt := range []struct {
		name string
		edit func(*Config)
		deps Deps
		want string
	}{
		{"no url secret", func(c *Config) { c.URLSecret = nil }, Deps{}, "url_secret_env"},
		{"public url", func(c *Config) { c.PublicURL = "hooks.example.com" }, Deps{}, "public_url"},
		{"route name", func(c *Config) { c.Routes[0].Name = "a/b" }, Deps{}, `routes[0] "a/b": name`},
		{"duplicate", func(c *Config) { c.Routes = append(c.Routes, c.Routes[0]) }, Deps{}, `routes[1] "calls": name used twice`},
		{"account", func(c *Config) { c.Routes[0].Account = "" }, Deps{}, "account"},
		{"kind", func(c *Config) { c.Routes[0].Kind = "fax" }, Deps{}, "kind"},
		{"target", func(c *Config) { c.Routes[0].Target = "/x" }, Deps{}, "target"},
		{"secret", func(c *Config) { c.Routes[0].SigningSecret = " " }, Deps{}, "signing_secret_env"},
		{"bad whsec", func(c *Config) { c.Routes[0].SigningSecret = "whsec_!!!" }, Deps{}, "signing_secret_env"},
		{"verify word", func(c *Config) { c.Routes[0].Verify = "maybe" }, Deps{}, "verify"},
		{"verify without exotel", func(c *Config) { c.Routes[0].Verify = VerifyExotel }, Deps{}, "verify"},
		{"reconcile sms", func(c *Config) { c.Routes[0].Kind, c.Routes[0].ReconcileAfter = KindSMS, time.Minute },
			Deps{Lookup: lookup}, "reconcile_after"},
		{"reconcile without exotel", func(c *Config) { c.Routes[0].ReconcileAfter = time.Minute }, Deps{}, "reconcile_after"},
		{"retry", func(c *Config) { c.Routes[0].Retry.MaxAge = -1 }, Deps{}, "retry"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.edit(&cfg)
			_, err := Open(filepath.Join(t.TempDir(), "w.db"), cfg, tt.deps)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open: %v; want an error naming %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") || strings.Contains(err.Error(), "url-secret") {
				t.Fatalf("a secret in the error: %v", err)
			}
		})
	}
	s, err := Open(filepath.Join(t.TempDir(), "w.db"), validConfig(), Deps{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestReconfigureKeepsQueue: a reload keeps pending messages and the one
// in flight; a removed route's messages wait, and go out when it returns.
func TestReconfigureKeepsQueue(t *testing.T) {
	e := newEnv(t, nil)
	release := make(chan struct{})
	e.target.answer(func(n int, w http.ResponseWriter) {
		if n == 1 {
			<-release
		}
	})
	e.svc.Start(context.Background())
	e.post("calls", formType, callForm)
	e.target.waitStarted(t)

	cfg := e.svc.config().Config
	routes := cfg.Routes
	cfg.Routes = routes[1:] // calls removed while its delivery is in flight
	if err := e.svc.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	e.post("calls", formType, "CallSid=removed1&Status=completed") // now 404
	close(release)
	e.target.wait(t)
	waitState(t, e, "calls", StateDelivered)

	// Queue a message for calls behind the listener's back (the route is
	// gone from it), as one left by an earlier configuration.
	if _, _, err := e.q.Accept(Message{Route: "calls", Account: testAccount, Key: "calls|call|later|completed|terminal",
		Sid: "later", Terminal: true, ContentType: formType, Body: []byte("CallSid=later&Status=completed"),
		Source: SourceExotel, ReceivedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	e.svc.wakeAll()
	if st, _ := e.q.Stats(); st["calls"].Pending != 1 {
		t.Fatalf("stats %+v", st)
	}
	moved := newTarget(t)
	routes[0].Target = moved.srv.URL
	cfg.Routes = routes
	if err := e.svc.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	if d := moved.wait(t); string(d.body) != "CallSid=later&Status=completed" {
		t.Fatalf("delivered %q", d.body)
	}
	if n := e.target.hits.Load(); n != 1 {
		t.Fatalf("old target hit %d times", n)
	}
	if c := e.svc.Counters(); c.Received[refuseToken] != 1 {
		t.Fatalf("counters %+v", c)
	}
	if err := e.svc.Reconfigure(Config{}); err == nil {
		t.Fatal("Reconfigure took an invalid config")
	}
}

// TestCloseWaitsInFlight: Close lets a delivery in flight finish, then
// closes the store.
func TestCloseWaitsInFlight(t *testing.T) {
	e := newEnv(t, nil)
	release := make(chan struct{})
	e.target.answer(func(int, http.ResponseWriter) { <-release })
	e.svc.Start(context.Background())
	e.post("calls", formType, callForm)
	e.target.waitStarted(t)
	closed := make(chan error)
	go func() { closed <- e.svc.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned with a delivery in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if c := e.svc.Counters(); c.Delivered != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// TestCloseBounded: Close gives up on a delivery in flight when its
// context ends; the message stays pending.
func TestCloseBounded(t *testing.T) {
	dir := t.TempDir()
	tg := newTarget(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tg.answer(func(int, http.ResponseWriter) { <-release })
	cfg := validConfig()
	cfg.Routes[0].Target = tg.srv.URL
	s, err := Open(filepath.Join(dir, "w.db"), cfg, Deps{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background())
	r := httptestPost(s, "calls", callForm)
	if r != 200 {
		t.Fatalf("status %d", r)
	}
	tg.waitStarted(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(filepath.Join(dir, "w.db"), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ms, _ := st.List("calls", StatePending, 10); len(ms) != 1 {
		t.Fatalf("%d pending after Close, want 1", len(ms))
	}
}

// TestOpenEndToEnd runs the service as the gateway does: Open on a file,
// the listener on 127.0.0.1, and a route signing with two secrets during
// a rotation (one whsec_, one raw), each verifiable on its own.
func TestOpenEndToEnd(t *testing.T) {
	tg := newTarget(t)
	cfg := validConfig()
	const raw = "a-raw-signing-secret"
	cfg.Routes[0].Target = tg.srv.URL
	cfg.Routes[0].SigningSecret = testSecret + " " + raw
	s, err := Open(filepath.Join(t.TempDir(), "w.db"), cfg, Deps{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	s.Start(context.Background())
	in := httptest.NewServer(s.Handler())
	defer in.Close()
	u, err := s.URL("calls")
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(u, "https://hooks.example.com")
	resp, err := http.Post(in.URL+path, formType, strings.NewReader(callForm))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	d := tg.wait(t)
	if sigs := strings.Fields(d.header.Get("webhook-signature")); len(sigs) != 2 {
		t.Fatalf("signatures %q, want two", sigs)
	}
	a, _ := standardwebhooks.NewWebhook(testSecret)
	b, _ := standardwebhooks.NewWebhookRaw([]byte(raw))
	for _, wh := range []*standardwebhooks.Webhook{a, b} {
		if err := wh.Verify(d.body, d.header); err != nil {
			t.Fatalf("signature: %v", err)
		}
	}
	other, _ := standardwebhooks.NewWebhookRaw([]byte("not-the-secret"))
	if err := other.Verify(d.body, d.header); err == nil {
		t.Fatal("a delivery verified under another secret")
	}
}
