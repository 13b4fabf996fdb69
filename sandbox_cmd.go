package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/gateway"
	"github.com/exogate/exogate/internal/metrics"
	"github.com/exogate/exogate/sandbox"
)

// The sandbox's well-known values. They are not secrets: the simulator
// is the only thing that accepts them, and it runs in the same process.
const (
	sandboxKey           = "sandbox_api_key"
	sandboxToken         = "sandbox_api_token"
	sandboxSigningSecret = "whsec_ZXhvZ2F0ZS1zYW5kYm94LXNpZ25pbmctc2VjcmV0"
	sandboxURLSecret     = "exogate-sandbox-url-secret-0123456789abcdef"
)

// sandboxFlags are exogate sandbox's settings.
type sandboxFlags struct {
	listen, admin, hooks string
	tlsListen, tlsCAOut  string
	accounts             string
	seed                 int64
	ring                 time.Duration
	routes               []string // name=URL, call routes of the first account
	smsRoutes            []string // name=URL, SMS routes of the first account
}

// sandboxCommand is `exogate sandbox`: the gateway exactly as in
// production, with an in-process Exotel simulator as its upstream.
func sandboxCommand(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, started func(*gateway.Server)) error {
	f, err := parseSandboxFlags(args, stderr)
	if err != nil {
		return err
	}
	accounts, err := sandboxAccounts(f.accounts)
	if err != nil {
		return err
	}
	cfg := config.Default()
	log, err := gateway.NewLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	storeDir, err := os.MkdirTemp("", "exogate-sandbox")
	if err != nil {
		return err
	}
	defer os.RemoveAll(storeDir)
	ca, err := newSandboxCA(time.Now(), storeDir, hostOf(f.hooks))
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	var simAccounts []sandbox.Account
	for _, a := range accounts {
		simAccounts = append(simAccounts, sandbox.Account{SID: a.SID, Key: sandboxKey, Token: sandboxToken})
	}
	sim := sandbox.New(sandbox.Config{Accounts: simAccounts, Seed: f.seed, Limit: 200, Period: time.Minute,
		Ring: f.ring, Logger: log.With().Str("component", "sandbox").Logger(), Name: "sandbox",
		CallbackRoots: ca.roots()})
	defer sim.Close()
	simAddr, stopSim, err := serveSimulator(ctx, sim, ca)
	if err != nil {
		return err
	}
	defer stopSim()
	simURL := "https://" + simAddr
	cfg.Upstream.CAFile = ca.caFile
	cfg.ApplyEnv(getenv) // EXOGATE_LISTEN and the like; the flags win
	sandboxConfig(&cfg, f, accounts, simURL, storeDir)
	if cfg.Webhooks.Listen != "" {
		cfg.Webhooks.TLS.CertFile, cfg.Webhooks.TLS.KeyFile = ca.certFile, ca.keyFile
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	var tl *sandboxTLS
	if f.tlsListen != "" {
		if tl, err = listenSandboxTLS(ctx, f.tlsListen, f.tlsCAOut, ca); err != nil {
			return err
		}
		defer tl.close()
	}
	deps := gateway.Deps{Getenv: sandboxEnv(getenv), Stderr: stderr, Logger: log, Metrics: metrics.New(buildVersion()), Version: buildVersion(),
		AdminRoutes: map[string]http.Handler{"/sandbox/": sim.AdminHandler()}}
	gw, err := gateway.New(cfg, deps)
	if err != nil {
		return err
	}
	log.Info().Str("exotel", simURL).Strs("accounts", sidsOf(accounts)).Int64("seed", f.seed).
		Msg("sandbox: Exotel is simulated in this process; nothing leaves the machine")
	return serve(ctx, gw, func(gw *gateway.Server) {
		refuseOwnListeners(sim, gw, tl, simAddr)
		if tl != nil {
			tl.serve(gw, log)
		}
		if started != nil {
			started(gw)
		}
	})
}

// sandboxEnv is getenv with the sandbox's well-known values for the
// variables its configuration names.
func sandboxEnv(getenv func(string) string) func(string) string {
	return func(k string) string {
		switch k {
		case "EXOGATE_SANDBOX_API_KEY":
			return sandboxKey
		case "EXOGATE_SANDBOX_API_TOKEN":
			return sandboxToken
		case "EXOGATE_SANDBOX_SIGNING_SECRET":
			return sandboxSigningSecret
		case config.EnvWebhookURLSecret:
			return sandboxURLSecret
		}
		return getenv(k)
	}
}

// refuseOwnListeners keeps the simulator's callbacks off the gateway's
// API, admin and HTTPS listeners and off the simulator itself: a
// StatusCallback there could reach the admin endpoints, or place calls
// whose callbacks place calls without end. The webhook ingress, where
// callbacks belong, stays reachable.
func refuseOwnListeners(sim *sandbox.Simulator, gw *gateway.Server, tl *sandboxTLS, simAddr string) {
	own := []string{gw.Addr().String(), simAddr}
	if a := gw.AdminAddr(); a != nil {
		own = append(own, a.String())
	}
	if tl != nil {
		own = append(own, tl.ln.Addr().String())
	}
	sim.RefuseCallbacksTo(own...)
}

func parseSandboxFlags(args []string, stderr io.Writer) (sandboxFlags, error) {
	var f sandboxFlags
	fs := flag.NewFlagSet("exogate sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.listen, "listen", "", "the gateway's listener, what services call (default 127.0.0.1:8080, or EXOGATE_LISTEN)")
	fs.StringVar(&f.admin, "admin", "", "the admin listener: /metrics, /status, /sandbox/faults, /sandbox/requests (default 127.0.0.1:9901, or EXOGATE_ADMIN_LISTEN)")
	fs.StringVar(&f.hooks, "hooks", "127.0.0.1:8081", "the webhook ingress the simulator sends callbacks to")
	fs.StringVar(&f.accounts, "accounts", "acme", "account SIDs, comma-separated; SID:mumbai for a Mumbai account")
	fs.StringVar(&f.tlsListen, "tls-listen", "", "also serve the gateway over HTTPS here (e.g. 127.0.0.1:443), with a certificate for Exotel's host names, for clients that hard-code them")
	fs.StringVar(&f.tlsCAOut, "tls-ca-out", "", "write the certificate authority of -tls-listen's certificate here (PEM), for clients to trust")
	fs.Int64Var(&f.seed, "seed", 1, "the simulator's seed: the same requests give the same Sids and outcomes")
	fs.DurationVar(&f.ring, "ring", 2*time.Second, "how long a simulated call rings before its callbacks")
	fs.Func("route", "NAME=URL: a call webhook route of the first account, for StatusCallback=exogate://NAME (repeatable)",
		routeFlag(&f.routes))
	fs.Func("sms-route", "NAME=URL: an SMS webhook route of the first account (repeatable)",
		routeFlag(&f.smsRoutes))
	if err := parseFlags(fs, args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("sandbox: unexpected argument %q", fs.Arg(0))
	}
	if f.ring <= 0 || f.ring > maxSandboxRing {
		return f, fmt.Errorf("sandbox: -ring must be above 0 and at most %v, such as 2s", maxSandboxRing)
	}
	if f.tlsCAOut != "" && f.tlsListen == "" {
		return f, errors.New("sandbox: -tls-ca-out needs -tls-listen")
	}
	return f, nil
}

// maxSandboxRing is the longest -ring: a call that rings longer holds one
// of the simulator's slots for calls in progress.
const maxSandboxRing = time.Hour

// routeFlag appends a NAME=URL value to list, refusing one without both.
func routeFlag(list *[]string) func(string) error {
	return func(v string) error {
		name, target, ok := strings.Cut(v, "=")
		if !ok || strings.TrimSpace(name) == "" || strings.TrimSpace(target) == "" {
			return errors.New("takes NAME=URL, such as calls=http://127.0.0.1:3000/exotel")
		}
		*list = append(*list, v)
		return nil
	}
}

// sandboxAccounts reads -accounts.
func sandboxAccounts(list string) ([]config.Account, error) {
	var out []config.Account
	seen := map[string]bool{}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		sid, region, _ := strings.Cut(item, ":")
		switch {
		case !config.ValidSID(sid):
			return nil, fmt.Errorf("sandbox: -accounts: %q is not an account SID (1-64 of A-Z a-z 0-9 _ -)", sid)
		case seen[strings.ToLower(sid)]:
			return nil, fmt.Errorf("sandbox: -accounts: %q is named twice", sid)
		case region == "":
			region = config.RegionSingapore
		case region != config.RegionSingapore && region != config.RegionMumbai:
			return nil, fmt.Errorf("sandbox: -accounts: %s: region %q is not %s or %s", sid, region, config.RegionSingapore, config.RegionMumbai)
		}
		seen[strings.ToLower(sid)] = true
		out = append(out, config.Account{SID: sid, Region: region, Credentials: config.Credentials{
			Source: "env", APIKeyEnv: "EXOGATE_SANDBOX_API_KEY", APITokenEnv: "EXOGATE_SANDBOX_API_TOKEN"}})
	}
	if len(out) == 0 {
		return nil, errors.New("sandbox: -accounts names no account")
	}
	return out, nil
}

// sandboxConfig makes cfg the production defaults with the simulator as
// every region's upstream.
func sandboxConfig(cfg *config.Config, f sandboxFlags, accounts []config.Account, simURL, storeDir string) {
	cfg.Accounts = accounts
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	if f.admin != "" {
		cfg.Admin.Listen = f.admin
	}
	for name := range cfg.Upstream.Regions {
		cfg.Upstream.Regions[name] = config.RegionHosts{API: simURL, CCM: simURL}
	}
	var routes []config.WebhookRoute
	add := func(list []string, kind string) {
		for _, r := range list {
			name, target, _ := strings.Cut(r, "=")
			r := config.WebhookRoute{Name: name, Account: accounts[0].SID, Kind: kind, Target: target,
				SigningSecretEnv: "EXOGATE_SANDBOX_SIGNING_SECRET"}
			r.SetDefaults()
			routes = append(routes, r)
		}
	}
	add(f.routes, "call")
	add(f.smsRoutes, "sms")
	if len(routes) > 0 {
		// Served over HTTPS as in production (the run's certificate, see
		// newSandboxCA), so no plain-HTTP exception is needed.
		cfg.Webhooks.Listen, cfg.Webhooks.PublicURL = f.hooks, "https://"+f.hooks
		cfg.Webhooks.SourceCIDRs = []string{"127.0.0.0/8", "::1/128"}
		cfg.Webhooks.Store.Path = storeDir + "/webhooks.db"
		cfg.Webhooks.Routes = routes
	}
}

// serveSimulator serves sim over HTTPS on a loopback port until stop is
// called, as Exotel serves only HTTPS, with the run's certificate. It
// returns the simulator's address.
func serveSimulator(ctx context.Context, sim http.Handler, ca *sandboxCA) (addr string, stop func(), err error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("sandbox: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: ca.serverTLS()}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// hostOf is addr's host, or addr when it has no port.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func sidsOf(accounts []config.Account) []string {
	var out []string
	for _, a := range accounts {
		out = append(out, a.SID)
	}
	return out
}
