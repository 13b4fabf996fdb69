package main

import (
	"fmt"
	"strings"
	"time"
)

// summary is one contender's numbers, reduced.
type summary struct {
	rps, rpsMin, rpsMax float64
	rpsRounds           []string
	p50, p99            time.Duration // saturated, medians over rounds
	rateP50, rateP99    time.Duration // fixed rate, pooled samples
	rateN               int
	rateErrors          int64
	lateP99             time.Duration
	clientReqs          int64 // wrk requests counted by the client
	upReqs              int64 // requests the upstream saw, all phases measured here
	upBad               counts
	non2xx, sockErrs    int64
	cpu                 time.Duration // summed over the saturated rounds
}

func summarize(s *stats) summary {
	var m summary
	var rps []float64
	var p50s, p99s []time.Duration
	for _, r := range s.sat {
		rps = append(rps, r.rps)
		m.rpsRounds = append(m.rpsRounds, fmt.Sprintf("%.0f", r.rps))
		p50s = append(p50s, r.p50)
		p99s = append(p99s, r.p99)
		m.clientReqs += r.requests
		m.upReqs += r.up.requests
		m.upBad.authBad += r.up.authBad
		m.upBad.hostBad += r.up.hostBad
		m.upBad.protoBad += r.up.protoBad
		m.non2xx += r.non2xx
		m.sockErrs += r.socketErrors
		m.cpu += r.cpu
	}
	m.rps = median(rps)
	m.rpsMin, m.rpsMax = rps[0], rps[0]
	for _, x := range rps {
		m.rpsMin, m.rpsMax = min(m.rpsMin, x), max(m.rpsMax, x)
	}
	m.p50, m.p99 = medianDur(p50s), medianDur(p99s)
	var lat, late []time.Duration
	for _, r := range s.rate {
		lat = append(lat, r.lat...)
		late = append(late, r.lateP99)
		m.rateErrors += r.errors
		m.upReqs += r.up.requests
		m.upBad.authBad += r.up.authBad
		m.upBad.hostBad += r.up.hostBad
		m.upBad.protoBad += r.up.protoBad
	}
	m.rateN = len(lat)
	m.rateP50, m.rateP99 = pct(lat, 0.50), pct(lat, 0.99)
	m.lateP99 = medianDur(late)
	return m
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

// report prints the Markdown section and returns whether the run is valid.
func report(o options, all []*contender, st map[string]*stats) bool {
	sum := map[string]summary{}
	for _, c := range all {
		sum[c.name] = summarize(st[c.name])
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	reportSaturated(p, o, all, sum)
	reportRate(p, o, all, sum)
	reportMemory(p, o, all, st)
	valid := reportUpstream(p, all, sum)
	reportTargets(p, o, st, sum)
	reportSetup(p, o, all)
	fmt.Print(b.String())
	return valid
}

// printer appends one formatted line to the report.
type printer func(format string, a ...any)

// reportSaturated is the table of the saturated rounds.
func reportSaturated(p printer, o options, all []*contender, sum map[string]summary) {
	d, e := sum["direct"], sum["exogate"]
	p("Run of %s. Machine: %s.", time.Now().UTC().Format("2006-01-02 15:04 UTC"), machine())
	p("")
	p("**Saturated** — `wrk -t%d -c%d -d%s --latency`, GET `%s`, %d rounds, contenders interleaved (order rotated each round), after a %s unrecorded warm-up each; medians over rounds. CPU per request = the proxy's own user+system time (`/proc/PID/stat`, all its processes) over the saturated runs ÷ requests served:",
		o.threads, o.conns, o.duration, path, o.rounds, o.warm)
	p("")
	p("| contender | req/s (median) | rounds | p50 | p99 | added p50 | added p99 | exogate ÷ this (req/s) | CPU per request |")
	p("|---|---|---|---|---|---|---|---|---|")
	for _, c := range all {
		s := sum[c.name]
		added50, added99, ratio, cpu := "—", "—", "—", "—"
		if c.name != "direct" {
			added50, added99 = fmtAdded(s.p50-d.p50), fmtAdded(s.p99-d.p99)
		}
		if c.proxy && s.clientReqs > 0 {
			cpu = fmt.Sprintf("%.1f µs", float64(s.cpu.Microseconds())/float64(s.clientReqs))
		}
		if c.name != "exogate" {
			ratio = fmt.Sprintf("%.2f", e.rps/s.rps)
		}
		p("| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |", c.name, s.rps, strings.Join(s.rpsRounds, " / "),
			fmtDur(s.p50), fmtDur(s.p99), added50, added99, ratio, cpu)
	}
	p("")
}

// reportRate is the table of the fixed-rate (open-loop) rounds.
func reportRate(p printer, o options, all []*contender, sum map[string]summary) {
	d := sum["direct"]
	p("**Fixed rate** — %.0f req/s open loop (Go generator in `bench/compare`, one goroutine per request on keep-alive connections, latency from send to the end of the body, %s per run after 0.5 s unrecorded, %d rounds interleaved), percentiles over all samples pooled:",
		o.rate, o.rateFor, o.rateRounds)
	p("")
	p("| contender | samples | p50 | p99 | added p50 | added p99 | errors | generator late (p99) |")
	p("|---|---|---|---|---|---|---|---|")
	for _, c := range all {
		s := sum[c.name]
		added50, added99 := "—", "—"
		if c.name != "direct" {
			added50, added99 = fmtAdded(s.rateP50-d.rateP50), fmtAdded(s.rateP99-d.rateP99)
		}
		p("| %s | %d | %s | %s | %s | %s | %d | %s |", c.name, s.rateN, fmtDur(s.rateP50), fmtDur(s.rateP99), added50, added99, s.rateErrors, fmtDur(s.lateP99))
	}
	p("")
}

// reportMemory is the table of memory and start-up.
func reportMemory(p printer, o options, all []*contender, st map[string]*stats) {
	p("**Memory and start-up** — VmRSS from `/proc/PID/status` summed over the contender's processes; idle = 1 s after its first request; peak = highest sum sampled every 100 ms during its saturated runs. Start-up = exec to the first 200 (exogate: `/readyz` on its listener; peers: a proxied request), polled every 0.2 ms, median of %d starts (min–max):",
		o.starts)
	p("")
	p("| contender | processes | RSS idle | RSS peak (saturated, %d conns) | ready after exec | first proxied 200 |", o.conns)
	p("|---|---|---|---|---|---|")
	for _, c := range all {
		if !c.proxy {
			continue
		}
		s := st[c.name]
		p("| %s | %d | %s | %s | %s (%s–%s) | %s |", c.name, s.nprocs, mib(s.idleKiB), mib(s.peakKiB),
			fmtDur(medianDur(s.starts)), fmtDur(minDur(s.starts)), fmtDur(maxDur(s.starts)), fmtDur(medianDur(s.firstReq)))
	}
	p("")

}

// reportUpstream is the table of what the upstream saw, and whether the run
// is valid: the upstream saw exactly the right credentials and Host, and no
// request failed.
func reportUpstream(p printer, all []*contender, sum map[string]summary) bool {
	valid := true
	p("**Upstream check** — every request's `Authorization` (exactly one, equal to Basic key:token) and `Host` verified by the stand-in upstream:")
	p("")
	p("| contender | requests seen upstream | auth mismatches | Host mismatches | malformed | wrk non-2xx | wrk socket errors | fixed-rate errors |")
	p("|---|---|---|---|---|---|---|---|")
	for _, c := range all {
		s := sum[c.name]
		p("| %s | %d | %d | %d | %d | %d | %d | %d |", c.name, s.upReqs, s.upBad.authBad, s.upBad.hostBad, s.upBad.protoBad, s.non2xx, s.sockErrs, s.rateErrors)
		if s.upBad.bad() > 0 || s.non2xx > 0 || s.rateErrors > 0 {
			valid = false
		}
	}
	p("")
	if !valid {
		p("**INVALID RUN**: some request reached the upstream with the wrong credentials or Host, or failed.")
		p("")
	}

	return valid
}

// reportTargets is the table of the targets, met or missed.
func reportTargets(p printer, o options, st map[string]*stats, sum map[string]summary) {
	d, e, n, h := sum["direct"], sum["exogate"], sum["nginx"], sum["HAProxy"]
	exoStart := medianDur(st["exogate"].starts)
	p("**Targets** (issue 7):")
	p("")
	p("| target | measured | verdict |")
	p("|---|---|---|")
	p("| saturated req/s ≥ 0.8 × nginx | %.0f / %.0f = %.2f | %s |", e.rps, n.rps, e.rps/n.rps, verdict(e.rps >= 0.8*n.rps))
	p("| saturated req/s ≥ 0.8 × HAProxy | %.0f / %.0f = %.2f | %s |", e.rps, h.rps, e.rps/h.rps, verdict(e.rps >= 0.8*h.rps))
	p("| %.0f req/s: p99 ≤ nginx's p99 | %s vs %s | %s |", o.rate, fmtDur(e.rateP99), fmtDur(n.rateP99), verdict(e.rateP99 <= n.rateP99))
	p("| %.0f req/s: p99 ≤ HAProxy's p99 | %s vs %s | %s |", o.rate, fmtDur(e.rateP99), fmtDur(h.rateP99), verdict(e.rateP99 <= h.rateP99))
	p("| %.0f req/s: added p50 ≤ nginx's added p50 | %s vs %s | %s |", o.rate, fmtAdded(e.rateP50-d.rateP50), fmtAdded(n.rateP50-d.rateP50), verdict(e.rateP50-d.rateP50 <= n.rateP50-d.rateP50))
	p("| RSS idle ≤ 12 MiB | %s (nginx %s, HAProxy %s) | %s |", mib(st["exogate"].idleKiB), mib(st["nginx"].idleKiB), mib(st["HAProxy"].idleKiB), verdict(st["exogate"].idleKiB <= 12*1024))
	p("| RSS at saturation ≤ 16 MiB | %s (nginx %s, HAProxy %s) | %s |", mib(st["exogate"].peakKiB), mib(st["nginx"].peakKiB), mib(st["HAProxy"].peakKiB), verdict(st["exogate"].peakKiB <= 16*1024))
	p("| ready ≤ 20 ms after exec | %s (nginx %s, HAProxy %s) | %s |", fmtDur(exoStart), fmtDur(medianDur(st["nginx"].starts)), fmtDur(medianDur(st["HAProxy"].starts)), verdict(exoStart <= 20*time.Millisecond))
	p("")
}

// reportSetup is how the peers log, and the configurations used.
func reportSetup(p printer, o options, all []*contender) {
	logs := "nginx and HAProxy each write one JSON access line per request to `/dev/null` (nginx `access_log /dev/null exo;`, unbuffered; HAProxy `log stdout format raw` with stdout on `/dev/null`), the same work as exogate's production-default access log (info, JSON, stderr, here `/dev/null`)."
	if !o.peerLog {
		logs = "nginx and HAProxy run with their access logs **off** (`-peer-log=false`); exogate keeps its production-default access log (info, JSON, stderr → `/dev/null`)."
	}
	p("Logging: %s", logs)
	if o.exoEnv != "" {
		p("")
		p("exogate ran with extra environment `%s` (not its defaults).", o.exoEnv)
	}
	p("")
	p("<details><summary>Configurations used (ports are chosen per run)</summary>")
	p("")
	for _, c := range all {
		if !c.proxy {
			continue
		}
		if c.reference {
			p("%s: %s", c.name, c.config)
			p("")
			continue
		}
		lang := map[string]string{"exogate": "yaml", "nginx": "nginx", "HAProxy": "haproxy"}[c.name]
		p("%s:", c.name)
		p("")
		p("```%s\n%s\n```", lang, trimLines(c.config))
		p("")
	}
	p("</details>")
}

func minDur(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = min(m, d)
	}
	return m
}

func maxDur(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
