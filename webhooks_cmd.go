package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/webhooks"
)

const webhooksUsage = `Usage:
  exogate webhooks url    -config FILE ROUTE               print the URL to give Exotel for ROUTE
  exogate webhooks list   [-config FILE] [-url ADMIN] [-route R] [-state pending|delivered|dead]
                                                          per route counts, or the messages of one route and state
  exogate webhooks replay [-config FILE] [-url ADMIN] -route R (-id ID | -state dead|delivered)
                                                          deliver again (the admin token, if any, from admin.token_file)
`

// webhooksCommand is `exogate webhooks ...`: the URL of a route from the
// configuration, and the running gateway's queue through its admin
// listener.
func webhooksCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, webhooksUsage)
		return errors.New("webhooks: a subcommand is required: url, list or replay")
	}
	switch args[0] {
	case "-h", "-help", "--h", "--help":
		fmt.Fprint(stderr, webhooksUsage)
		return flag.ErrHelp
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("exogate webhooks "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file")
	admin := fs.String("url", "", "the admin listener's base URL (default: from the configuration)")
	route := fs.String("route", "", "route name")
	state := fs.String("state", "", "message state: pending, delivered or dead")
	id := fs.String("id", "", "message id (webhook-id)")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	switch sub {
	case "url":
		if fs.NArg() != 1 || *configPath == "" {
			return errors.New("webhooks url: usage: exogate webhooks url -config FILE ROUTE")
		}
		return webhookURL(*configPath, fs.Arg(0), getenv, stdout)
	case "list", "replay":
		if fs.NArg() > 0 {
			return fmt.Errorf("webhooks %s: unexpected argument %q", sub, fs.Arg(0))
		}
	default:
		fmt.Fprint(stderr, webhooksUsage)
		return fmt.Errorf("webhooks: unknown subcommand %q", sub)
	}
	cfg, base, err := adminTarget(*configPath, *admin, getenv)
	if err != nil {
		return fmt.Errorf("webhooks %s: %w", sub, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if sub == "list" {
		return webhooksList(ctx, base, *route, *state, stdout)
	}
	return webhooksReplay(ctx, cfg, base, *route, *id, *state, stdout)
}

// webhookURL prints a route's public URL, its token derived from the URL
// secret in the environment.
func webhookURL(path, route string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	cfg.ApplyEnv(getenv)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	w := cfg.Webhooks
	if !w.Enabled() {
		return errors.New("webhooks url: webhooks.listen is not set in " + path)
	}
	found := false
	for _, r := range w.Routes {
		found = found || r.Name == route
	}
	if !found {
		return fmt.Errorf("webhooks url: no route %q in %s", route, path)
	}
	secret := getenv(w.URLSecretEnv)
	if len(secret) < config.MinWebhookURLSecret {
		return fmt.Errorf("webhooks url: %s must hold the URL secret (at least %d bytes), as in the gateway's environment", w.URLSecretEnv, config.MinWebhookURLSecret)
	}
	_, err = fmt.Fprintf(stdout, "%s/hooks/%s/%s\n", strings.TrimSuffix(w.PublicURL, "/"), route, webhooks.Token([]byte(secret), route))
	return err
}

// adminTarget is the configuration (defaults without a file) and the admin
// listener's base URL: given, or from the configuration.
func adminTarget(path, given string, getenv func(string) string) (config.Config, string, error) {
	cfg := config.Default()
	if path != "" {
		c, err := config.Load(path)
		if err != nil {
			return cfg, "", err
		}
		cfg = c
	}
	cfg.ApplyEnv(getenv)
	if given != "" {
		return cfg, strings.TrimSuffix(given, "/"), nil
	}
	if cfg.Admin.Listen == "" {
		return cfg, "", errors.New("admin.listen is off: pass -url")
	}
	base, err := localURL(cfg.Admin.Listen)
	return cfg, base, err
}

// localURL is http://host:port for a listen address, a wildcard host
// replaced by loopback.
func localURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port", addr)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

func webhooksList(ctx context.Context, base, route, state string, stdout io.Writer) error {
	target := base + "/webhooks"
	if route != "" && state == "" {
		return errors.New("webhooks list: -state pending, delivered or dead goes with -route")
	}
	if route != "" || state != "" {
		q := url.Values{}
		if route != "" {
			q.Set("route", route)
		}
		if state != "" {
			q.Set("state", state)
		}
		target = base + "/webhooks/messages?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	return adminDo(req, stdout)
}

func webhooksReplay(ctx context.Context, cfg config.Config, base, route, id, state string, stdout io.Writer) error {
	if route == "" || (id == "") == (state == "") {
		return errors.New("webhooks replay: -route and one of -id or -state are required")
	}
	body, _ := json.Marshal(map[string]string{"route": route, "id": id, "state": state})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webhooks/replay", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.Admin.TokenFile != "" {
		token, err := secretFromFile(cfg.Admin.TokenFile, "")
		if err != nil {
			return fmt.Errorf("webhooks replay: admin.token_file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return adminDo(req, stdout)
}

// adminDo sends req to the admin listener and copies a 2xx answer to
// stdout; any other answer is an error carrying its text.
func adminDo(req *http.Request, stdout io.Writer) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhooks: %s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	_, err = stdout.Write(body)
	return err
}
