package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/rs/zerolog"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/gateway"
	"github.com/exogate/exogate/internal/metrics"
	"github.com/exogate/exogate/internal/rotate"
)

// rotateCommand is `exogate rotate`: test a new key and token, publish
// them, and wait until every replica uses them. Exit 1: nothing was
// published; exit 2: published, but a replica did not confirm in time.
func rotateCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("exogate rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "the gateway's configuration file (required)")
	account := fs.String("account", "", "the account SID to rotate (required)")
	replicas := fs.String("replicas", "", "the replicas' admin URLs, comma-separated (default: from the Redis heartbeats, with limits.backend: redis)")
	timeout := fs.Duration("timeout", rotateDefaultTimeout, "how long to wait for every replica to confirm")
	rollback := fs.Bool("rollback", false, "publish the previous KV v2 version's pair again instead of reading a new one")
	vaultTokenFile := fs.String("vault-token-file", "", "a file holding the operator's Vault token (default: VAULT_TOKEN)")
	adminTokenFile := fs.String("admin-token-file", "", "a file holding the replicas' admin token (default: admin.token_file)")
	if err := parseFlags(fs, args); err != nil {
		return &rotate.Error{Code: rotate.ExitRefused, Err: err}
	}
	refuse := func(err error) error {
		return &rotate.Error{Code: rotate.ExitRefused, Err: fmt.Errorf("rotate: %w", err)}
	}
	if *configPath == "" || *account == "" || fs.NArg() > 0 {
		return refuse(errors.New("usage: exogate rotate -config FILE -account SID [-replicas URL,...] [-timeout 2m] [-rollback] < new-key-and-token"))
	}
	cfg, err := loadConfig(*configPath, getenv)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return refuse(err)
	}
	o := rotate.Options{Config: cfg, Account: *account, Rollback: *rollback, Timeout: *timeout, Out: stdout}
	if !*rollback {
		if o.Key, o.Token, err = rotate.ReadPair(stdin, stderr); err != nil {
			return refuse(err)
		}
	}
	if o.VaultToken, err = secretFromFile(*vaultTokenFile, getenv(api.EnvVaultToken)); err != nil {
		return refuse(fmt.Errorf("-vault-token-file: %w", err))
	}
	if *adminTokenFile == "" {
		*adminTokenFile = cfg.Admin.TokenFile
	}
	if o.AdminToken, err = secretFromFile(*adminTokenFile, ""); err != nil {
		return refuse(fmt.Errorf("admin token: %w", err))
	}
	for _, r := range strings.Split(*replicas, ",") {
		if r = strings.TrimSpace(r); r != "" {
			o.Replicas = append(o.Replicas, r)
		}
	}
	o.Discover = func(ctx context.Context) ([]string, error) { return discoverReplicas(ctx, cfg, getenv) }
	// The credential test's gateway logs its warnings and errors only:
	// the test's outcome is its line on stdout.
	log, err := gateway.NewLogger(cfg.Log, stderr)
	if err != nil {
		return refuse(err)
	}
	log = log.Level(max(log.GetLevel(), zerolog.WarnLevel))
	o.Deps = gateway.Deps{Getenv: getenv, Stderr: stderr, Logger: log, Metrics: metrics.New(buildVersion()), Version: buildVersion()}
	return rotate.Run(ctx, o)
}

// rotateDefaultTimeout is -timeout's default.
const rotateDefaultTimeout = 2 * time.Minute

// discoverReplicas lists the admin URLs the replicas publish with their
// Redis heartbeats. A replica that publishes none cannot be asked to
// confirm: that is an error, before anything is written.
func discoverReplicas(ctx context.Context, cfg config.Config, getenv func(string) string) ([]string, error) {
	reps, err := gateway.Replicas(ctx, cfg, getenv)
	if err != nil {
		return nil, err
	}
	var urls, silent []string
	for _, r := range reps {
		if r.AdminURL == "" {
			silent = append(silent, r.ID)
			continue
		}
		urls = append(urls, r.AdminURL)
	}
	if len(silent) > 0 {
		return nil, fmt.Errorf("replica %s publishes no admin URL (no admin listener), so it cannot confirm the new version: give it an admin listener, or list the replicas with -replicas", strings.Join(silent, ", "))
	}
	return urls, nil
}
