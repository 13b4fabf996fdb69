package ratelimit

import "time"

// shareRule returns the Rule one of n replicas enforces on its own while
// Redis is unavailable, so that n replicas together keep to r:
//
//   - Limit/n >= 2: Rule{Limit/n, Period, Burst/n} (Burst at least 1 and
//     below the new Limit). No replica lets more than Limit/n into a window
//     of Period, so the n of them no more than Limit.
//   - Limit/n == 1: one request per window, which a Rule can only say as
//     Rule{2, Period+1ns, 1}: a token every Period+1ns, so no closed window
//     of Period holds two.
//   - Limit < n: no share of whole requests per window exists. Each replica
//     gets its part of the rule's rate, one request per
//     n·Period/(Limit−Burst) (rounded up), as Rule{2, that, 1}: together the
//     replicas keep to the rule's rate over time, and any one of them to a
//     single request per window, but a window may see up to n.
//
// A Rule that is off, or n <= 1, is returned as it is.
func shareRule(r Rule, n int) Rule {
	if r.Limit == 0 || n <= 1 {
		return r
	}
	k := r.Limit / n
	switch {
	case k >= 2:
		return Rule{Limit: k, Period: r.Period, Burst: min(max(r.burst()/n, 1), k-1)}
	case k == 1:
		return Rule{Limit: 2, Period: r.Period + 1, Burst: 1}
	default:
		p, rate := time.Duration(maxSpan), time.Duration(r.Limit-r.burst())
		if r.Period <= maxSpan/time.Duration(n) {
			p = (r.Period*time.Duration(n) + rate - 1) / rate
		}
		return Rule{Limit: 2, Period: p, Burst: 1}
	}
}

// shareConfig returns cfg with every Rule replaced by its share for one of
// n replicas (see shareRule).
func shareConfig(cfg Config, n int) Config {
	buckets := make(map[string]Rule, len(cfg.Buckets))
	for name, r := range cfg.Buckets {
		buckets[name] = shareRule(r, n)
	}
	cfg.Buckets = buckets
	cfg.Account = shareRule(cfg.Account, n)
	return cfg
}
