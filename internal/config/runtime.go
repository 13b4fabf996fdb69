package config

import (
	"github.com/exogate/exogate/credentials"
	"github.com/exogate/exogate/proxy"
	"github.com/exogate/exogate/ratelimit"
)

// The file format and the runtime packages' settings are separate types:
// the functions below map one to the other field by field, so that a field
// added to either side is a compile-time or test-time decision
// (TestMappingsCopyEveryField), never a silent change of layout.

// RateLimit returns the rule as the limiter takes it.
func (r Rule) RateLimit() ratelimit.Rule {
	return ratelimit.Rule{Limit: r.Limit, Period: r.Period, Burst: r.Burst}
}

// Credentials returns the login settings as the credentials store takes them.
func (a VaultAuth) Credentials() credentials.VaultAuth {
	return credentials.VaultAuth{
		Method:                  a.Method,
		Mount:                   a.Mount,
		TokenFile:               a.TokenFile,
		RoleIDFile:              a.RoleIDFile,
		RoleIDEnv:               a.RoleIDEnv,
		SecretIDFile:            a.SecretIDFile,
		SecretIDEnv:             a.SecretIDEnv,
		SecretIDWrapped:         a.SecretIDWrapped,
		Role:                    a.Role,
		ServiceAccountTokenFile: a.ServiceAccountTokenFile,
	}
}

// Credentials returns where the account's pair lives, as the credentials
// store takes it.
func (s VaultSecret) Credentials() credentials.VaultSecret {
	return credentials.VaultSecret{
		Mount:         s.Mount,
		Path:          s.Path,
		KVVersion:     s.KVVersion,
		APIKeyField:   s.APIKeyField,
		APITokenField: s.APITokenField,
	}
}

// Proxy returns the breaker settings as the proxy takes them.
func (b Breaker) Proxy() proxy.BreakerSettings {
	return proxy.BreakerSettings{
		ConsecutiveFailures: b.ConsecutiveFailures,
		FailureRatio:        b.FailureRatio,
		MinRequests:         b.MinRequests,
		Interval:            b.Interval,
		OpenFor:             b.OpenFor,
		HalfOpenRequests:    b.HalfOpenRequests,
	}
}
