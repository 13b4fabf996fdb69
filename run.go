package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/gateway"
	"github.com/exogate/exogate/internal/metrics"
	"github.com/exogate/exogate/ratelimit"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `exogate: an authenticating gateway for the Exotel API

Usage:
  exogate sandbox [-listen ADDR] [-accounts acme] [-seed N]  the gateway on a simulated Exotel, offline
  exogate [serve] [-config FILE] [-listen ADDR]   run the gateway
  exogate check   [-config FILE]                  test every account's credentials against Exotel
  exogate health  [-config FILE] [-url URL]       exit 0 when the running gateway is ready (for HEALTHCHECK)
  exogate webhooks url|list|replay ...           the callback routes' URLs and queue ("exogate webhooks" for more)
  exogate rotate  -config FILE -account SID [-replicas URL,...] [-timeout 2m] [-rollback] < key-and-token
                                                  test a new API key and token, publish it, confirm every replica uses it
  exogate hash-secret < secret                    print the secret_sha256 of a client secret read from stdin
  exogate version                                 print the version

Without -config, one account is served from the environment:
  EXOTEL_API_KEY, EXOTEL_API_TOKEN, EXOTEL_ACCOUNT_SID (required), EXOTEL_REGION (singapore | mumbai).
EXOGATE_LISTEN overrides the listen address in both modes.
`

// run is the whole program: it reads flags, the environment and the config
// file, wires the gateway and serves until ctx ends or SIGINT/SIGTERM.
// stdin is read by hash-secret and rotate only.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	err := runNotify(ctx, args, getenv, stdin, stdout, stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h: the flags were printed, as asked
	}
	return err
}

// runNotify is run, calling started (when not nil) with the gateway once it
// listens: in-process tests read its addresses there.
func runNotify(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, started func(*gateway.Server)) error {
	cmd, rest := "serve", args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "version":
		_, err := fmt.Fprintf(stdout, "exogate %s\n", buildVersion())
		return err
	case "help":
		_, err := io.WriteString(stdout, usage)
		return err
	case "health":
		return health(ctx, rest, getenv, stdout, stderr)
	case "webhooks":
		return webhooksCommand(ctx, rest, getenv, stdout, stderr)
	case "hash-secret":
		return hashSecretCommand(rest, stdin, stdout, stderr)
	case "rotate":
		return rotateCommand(ctx, rest, getenv, stdin, stdout, stderr)
	case "sandbox":
		return sandboxCommand(ctx, rest, getenv, stderr, started)
	case "serve", "check":
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}

	fs := flag.NewFlagSet("exogate "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (YAML); without it, one account from EXOTEL_* variables")
	listen := fs.String("listen", "", "listen address, overriding the file and EXOGATE_LISTEN")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	load := func() (config.Config, error) {
		cfg, err := loadConfig(*configPath, getenv)
		if err != nil {
			return config.Config{}, err
		}
		if *listen != "" {
			cfg.Listen = *listen
		}
		if err := cfg.Validate(); err != nil {
			return config.Config{}, fmt.Errorf("invalid configuration:\n%w", err)
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	log, err := gateway.NewLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	if cfg.Limits.Backend == "redis" {
		// go-redis keeps one logger for the whole process: set once, here,
		// with the first configuration's level and format; a reload does
		// not change it.
		ratelimit.RouteRedisLogs(log)
	}
	deps := gateway.Deps{Getenv: getenv, Stderr: stderr, Logger: log, Metrics: metrics.New(buildVersion()), Version: buildVersion()}
	if cmd == "check" {
		return gateway.Check(ctx, cfg, deps, stdout)
	}
	if *configPath != "" {
		deps.Load = load
	}
	gw, err := gateway.New(cfg, deps)
	if err != nil {
		return err
	}
	return serve(ctx, gw, started)
}

// serve runs the gateway until ctx ends or SIGINT/SIGTERM arrives, then
// drains. SIGHUP (and POST /-/reload) reload the configuration file.
func serve(ctx context.Context, gw *gateway.Server, started func(*gateway.Server)) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := gw.Start(ctx); err != nil {
		return err
	}
	if started != nil {
		started(gw)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for running := true; running; {
		select {
		case err := <-gw.Err():
			gw.Abort()
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			_ = gw.Reload()
		case <-ctx.Done():
			running = false
		}
	}
	stop() // a second signal kills the process the default way
	return gw.Close(context.WithoutCancel(ctx))
}

// health asks a running gateway's /readyz (on the admin listener, else the
// main one) and succeeds only on 200: the container HEALTHCHECK, which needs
// no shell or curl in the image.
func health(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("exogate health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file, to find the admin address")
	url := fs.String("url", "", "readiness URL (default: /readyz on the configured admin or main listener)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := parseFlags(fs, args); err != nil {
		var fe flagError
		if errors.As(err, &fe) {
			fe.code = 1 // Docker reserves a HEALTHCHECK's exit 2
			return fe
		}
		return err
	}
	if *url == "" {
		cfg := config.Default()
		if *configPath != "" {
			if c, err := config.Load(*configPath); err == nil {
				cfg = c
			}
		}
		cfg.ApplyEnv(getenv)
		addr := cfg.Admin.Listen
		if addr == "" {
			addr = cfg.Listen
		}
		base, err := localURL(addr)
		if err != nil {
			return fmt.Errorf("health: %w", err)
		}
		*url = base + "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: not ready: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	_, err = fmt.Fprintf(stdout, "ready\n")
	return err
}

func loadConfig(path string, getenv func(string) string) (config.Config, error) {
	var (
		cfg config.Config
		err error
	)
	if path != "" {
		cfg, err = config.Load(path)
	} else {
		cfg, err = config.FromEnv(getenv)
	}
	if err != nil {
		return config.Config{}, err
	}
	cfg.ApplyEnv(getenv)
	return cfg, nil
}

func buildVersion() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}
