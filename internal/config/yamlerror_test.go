package config

import "testing"

// TestYAMLErrorsNameTheField covers every rewrite describeYAMLError makes
// of the YAML library's messages: an unknown field becomes an unknown key,
// a value that does not decode is named by its dotted path, the library's
// "yaml: " prefix goes, and several problems are joined on one line.
func TestYAMLErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "limits:\n  maxwait: 1s\n", `config: line 2: unknown key "maxwait"`},
		{"unknown key in a list", "accounts:\n  - sid: a\n    credentials: {source: env, api_key: x}\n", `config: line 3: unknown key "api_key"`},
		{"bad duration", "shutdown_timeout: soon\n", "config: line 1: shutdown_timeout: cannot unmarshal !!str `soon` into time.Duration"},
		{"negative count", "breaker: {consecutive_failures: -1}\n", "config: line 1: breaker.consecutive_failures: cannot unmarshal !!int `-1` into uint32"},
		{"in a map", "limits: {buckets: {sms: {limit: x}}}\n", "config: line 1: limits.buckets.sms.limit: cannot unmarshal !!str `x` into int"},
		{"second value on the line", "clients: [{id: a, accounts: x}]\n", "config: line 1: clients[0].accounts: cannot unmarshal !!str `x` into []string"},
		{"long value", "breaker: {open_for: 1s, interval: forever-and-ever}\n", "config: line 1: breaker.interval: cannot unmarshal !!str `forever...` into time.Duration"},
		{"map for a list", "accounts: {a: 1}\n", "config: line 1: accounts: cannot unmarshal !!map into []config.Account"},
		{"list for a map", "upstream: {regions: [a]}\n", "config: line 1: upstream.regions: cannot unmarshal !!seq into map[string]config.RegionHosts"},
		{"byte size", "max_body: lots\n", `config: line 1: max_body: "lots" is not a size (examples: 1048576, 64KiB, 1MiB)`},
		{"key twice", "listen: a\nlisten: b\n", `config: line 2: listen: mapping key "listen" already defined at line 1`},
		{"key twice in a list", "accounts:\n  - sid: a\n    sid: b\n", `config: line 3: accounts[0].sid: mapping key "sid" already defined at line 2`},
		{"syntax", "listen: [\n", "config: line 1: did not find expected node content"},
		{"syntax without a line", "\tlisten: x\n", "config: found character that cannot start any token"},
		{"several", "limits:\n  maxwait: 1s\nshutdown_timeout: soon\nbreaker: {open_for: x}\n",
			"config: line 2: unknown key \"maxwait\"; line 3: shutdown_timeout: cannot unmarshal !!str `soon` into time.Duration; line 4: breaker.open_for: cannot unmarshal !!str `x` into time.Duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error\n  %v\nwant\n  %s", err, tc.want)
			}
		})
	}
}
