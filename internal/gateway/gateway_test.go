package gateway

import (
	"testing"

	"github.com/exogate/exogate/internal/config"
)

// testConfig is a validated configuration of one account whose key and
// token come from the environment getenv reads.
func testConfig(t *testing.T) (config.Config, func(string) string) {
	t.Helper()
	env := map[string]string{
		config.EnvAPIKey:     "key-0123456789",
		config.EnvAPIToken:   "token-0123456789",
		config.EnvAccountSID: "acme",
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg, getenv
}
