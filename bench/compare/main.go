// Command compare puts exogate next to the proxies a platform team would
// write by hand for the same job — nginx and HAProxy replacing the caller's
// Authorization with Basic key:token, setting Host, keeping connections to
// the upstream alive — on this machine only (loopback), against a fast
// stand-in for Exotel that checks the credentials every request carries, and
// a direct baseline with no proxy; and, as a yardstick, the plain Go
// ReverseProxy doing the same (goproxy.go). It reports, from one run:
//
//   - saturated throughput, latency and CPU per request at fixed
//     concurrency (wrk), the contenders interleaved over several rounds,
//     medians;
//   - tail latency at a fixed, moderate rate (an open-loop generator here);
//   - memory (VmRSS summed over the contender's processes, idle and peak
//     while saturated) and start-up (exec to first served request);
//   - the targets, met or missed;
//   - optionally, one more saturated exogate run under perf record.
//
// `compare tail` (tail.go) measures the tail closed loop instead, with hey,
// and `compare clients` (clients.go) exogate's two upstream clients.
//
// Run it with bench/compare.sh. Every load loop is bounded in count and time.
package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	key   = "benchkey0123456789"
	token = "benchtoken0123456789"
)

type options struct {
	exogate    string
	threads    int
	conns      int
	duration   time.Duration
	warm       time.Duration
	rounds     int
	rate       float64
	rateFor    time.Duration
	rateRounds int
	starts     int
	peerLog    bool
	reuseport  bool
	perfOut    string
	reference  bool
	before     string
	exoEnv     string
}

func main() {
	if len(os.Args) > 1 && subcommand(os.Args[1], os.Args[2:]) {
		return
	}
	var o options
	flag.StringVar(&o.exogate, "exogate", "", "path to the exogate binary")
	flag.StringVar(&o.before, "before", "", "path to an earlier exogate binary, measured beside the current one as \"exogate (before)\"")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.IntVar(&o.conns, "conns", 64, "wrk connections")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "each saturated wrk run (whole seconds)")
	flag.DurationVar(&o.warm, "warm", 2*time.Second, "one unrecorded wrk run per contender before the rounds (whole seconds, 0 = none)")
	flag.IntVar(&o.rounds, "rounds", 3, "saturated rounds, contenders interleaved")
	flag.Float64Var(&o.rate, "rate", 2000, "fixed rate, requests per second")
	flag.DurationVar(&o.rateFor, "rate-duration", 5*time.Second, "each fixed-rate run")
	flag.IntVar(&o.rateRounds, "rate-rounds", 3, "fixed-rate rounds, contenders interleaved")
	flag.IntVar(&o.starts, "starts", 5, "start-up measurements per proxy")
	flag.BoolVar(&o.peerLog, "peer-log", true, "nginx and HAProxy write one JSON access line per request to /dev/null, as exogate does (false: their access logs off)")
	flag.BoolVar(&o.reuseport, "nginx-reuseport", true, "nginx listens with reuseport (one accept queue per worker)")
	flag.BoolVar(&o.reference, "reference", true, "also measure the plain Go ReverseProxy (bench/compare/goproxy.go) as a yardstick")
	flag.StringVar(&o.exoEnv, "exogate-env", "", "extra environment for exogate, comma-separated (e.g. GOMAXPROCS=1,GOGC=200), to try runtime settings without a rebuild")
	flag.StringVar(&o.perfOut, "perf", "", "after the rounds, one more saturated exogate run under 'perf record -g', written to this file (not counted in the results)")
	flag.Parse()
	if o.exogate == "" {
		fmt.Fprintln(os.Stderr, "usage: compare -exogate PATH [flags]")
		os.Exit(2)
	}
	if o.rounds < 1 || o.rateRounds < 1 || o.starts < 1 || o.duration < time.Second || o.rate <= 0 || o.rate > 50000 {
		fmt.Fprintln(os.Stderr, "compare: rounds, rate-rounds, starts ≥ 1, duration ≥ 1s, 0 < rate ≤ 50000")
		os.Exit(2)
	}
	valid, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
	if !valid {
		fmt.Fprintln(os.Stderr, "compare: INVALID run (see the upstream check above)")
		os.Exit(1)
	}
}

// subcommand runs the mode named by name, if it is one (upstream, rate,
// clients, tail, goproxy), and reports whether it was.
func subcommand(name string, args []string) bool {
	modes := map[string]func([]string) error{"clients": clientsMain, "tail": tailMain, "goproxy": goproxyMain}
	switch {
	case name == "upstream":
		// The stand-in Exotel alone, for experiments by hand: prints its
		// address, serves until interrupted.
		up, err := startUpstream("Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+token)))
		if err != nil {
			fmt.Fprintln(os.Stderr, "compare upstream:", err)
			os.Exit(1)
		}
		fmt.Println(up.addr())
		select {}
	case name == "rate" && len(args) > 0:
		// One fixed-rate run by hand: compare rate URL [RATE] (stale
		// credentials sent, as to a proxy).
		rate := 2000.0
		if len(args) > 1 {
			fmt.Sscan(args[1], &rate)
		}
		r := openLoop(args[0], staleAuth, rate, 500*time.Millisecond, 5*time.Second)
		sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
		fmt.Printf("p50 %s  p99 %s  errors %d  generator late p99 %s\n", fmtDur(pct(r.lat, 0.50)), fmtDur(pct(r.lat, 0.99)), r.errors, fmtDur(r.lateP99))
		return true
	case modes[name] != nil:
		if err := modes[name](args); err != nil {
			fmt.Fprintf(os.Stderr, "compare %s: %v\n", name, err)
			os.Exit(1)
		}
		return true
	}
	return false
}

func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

type satRound struct {
	wrkResult
	up  counts
	cpu time.Duration // the contender's CPU time during the run (proxies only)
}

type rateRound struct {
	openLoopResult
	up counts
}

type stats struct {
	sat      []satRound
	rate     []rateRound
	starts   []time.Duration // exec → first 200 (exogate: /readyz)
	firstReq []time.Duration // exec → first proxied 200 (after /readyz for exogate)
	nprocs   int
	idleKiB  int64
	peakKiB  int64
}

func run(o options) (bool, error) {
	dir, err := os.MkdirTemp("", "exogate-compare")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	_ = os.Chmod(dir, 0o755) // nginx workers run as nobody

	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+token))
	up, err := startUpstream(wantAuth)
	if err != nil {
		return false, err
	}
	defer up.close()
	proxies, err := newProxies(o, dir, up.addr(), wantAuth)
	if err != nil {
		return false, err
	}
	direct := &contender{name: "direct", base: "http://" + up.addr(), auth: wantAuth}
	all := append([]*contender{direct}, proxies...)
	st := map[string]*stats{}
	for _, c := range all {
		st[c.name] = &stats{}
	}
	defer func() {
		for _, p := range proxies {
			p.stop()
		}
	}()
	if err := measureStarts(o, proxies, st); err != nil {
		return false, err
	}
	if err := startLongLived(proxies, st); err != nil {
		return false, err
	}
	if err := saturatedRounds(o, all, up, st); err != nil {
		return false, err
	}
	fixedRateRounds(o, all, up, st)
	// Optionally, a CPU profile of the real binary under the same load.
	if o.perfOut != "" {
		if err := perfRun(o, proxies[0]); err != nil {
			progress("perf: %v (skipped)", err)
		}
	}
	return report(o, all, st), nil
}

// newProxies is exogate (first), nginx, HAProxy, and as asked exogate's
// earlier build and the plain Go ReverseProxy, none started yet.
func newProxies(o options, dir, up, wantAuth string) ([]*contender, error) {
	var extraEnv []string
	if o.exoEnv != "" {
		extraEnv = strings.Split(o.exoEnv, ",")
	}
	exo, err := newExogate(dir, "exogate", o.exogate, up, key, token, extraEnv)
	if err != nil {
		return nil, err
	}
	ngxLog := ""
	if o.peerLog {
		ngxLog = "/dev/null"
	}
	ngx, err := newNginx(dir, up, wantAuth, ngxLog, o.reuseport)
	if err != nil {
		return nil, err
	}
	hap, err := newHAProxy(dir, up, wantAuth, o.peerLog)
	if err != nil {
		return nil, err
	}
	proxies := []*contender{exo, ngx, hap}
	if o.before != "" {
		before, err := newExogate(dir, "exogate (before)", o.before, up, key, token, extraEnv)
		if err != nil {
			return nil, err
		}
		before.config = "exogate's configuration above, run by the binary given with -before (" + o.before + ")"
		proxies = append(proxies, before)
	}
	if o.reference {
		ref, err := newGoProxy(up, wantAuth)
		if err != nil {
			return nil, err
		}
		proxies = append(proxies, ref)
	}
	return proxies, nil
}

// rotate is cs starting at its r-th element (mod len), wrapped around.
func rotate(cs []*contender, r int) []*contender {
	out := make([]*contender, len(cs))
	for i := range cs {
		out[i] = cs[(i+r)%len(cs)]
	}
	return out
}

// measureStarts times exec → first 200, interleaved, each proxy stopped
// before the next starts.
func measureStarts(o options, proxies []*contender, st map[string]*stats) error {
	for i := 0; i < o.starts; i++ {
		for _, p := range rotate(proxies, i) {
			ready, first, err := p.start()
			p.stop()
			if err != nil {
				return err
			}
			st[p.name].starts = append(st[p.name].starts, ready)
			st[p.name].firstReq = append(st[p.name].firstReq, first)
		}
	}
	progress("start-up measured (%d starts each)", o.starts)
	return nil
}

// startLongLived starts the instances the load goes through, and records
// their idle memory after one request and a pause.
func startLongLived(proxies []*contender, st map[string]*stats) error {
	cl := pollClient()
	for _, p := range proxies {
		if _, _, err := p.start(); err != nil {
			return err
		}
		if code := get(cl, p.url()); code != 200 {
			return fmt.Errorf("%s: first request answered %d", p.name, code)
		}
	}
	time.Sleep(time.Second)
	for _, p := range proxies {
		pids := p.pids()
		st[p.name].nprocs = len(pids)
		st[p.name].idleKiB = rssKiB(pids)
	}
	progress("idle RSS: exogate %s, nginx %s, HAProxy %s", mib(st["exogate"].idleKiB), mib(st["nginx"].idleKiB), mib(st["HAProxy"].idleKiB))
	return nil
}

// saturatedRounds is wrk at fixed concurrency, contenders interleaved over
// rounds after an unrecorded warm-up each.
func saturatedRounds(o options, all []*contender, up *upstream, st map[string]*stats) error {
	if o.warm >= time.Second {
		for _, c := range all {
			if _, err := runWrk(c.url(), c.auth, o.threads, o.conns, o.warm); err != nil {
				return fmt.Errorf("%s warm-up: %w", c.name, err)
			}
		}
	}
	for r := 0; r < o.rounds; r++ {
		for _, c := range rotate(all, r) {
			if err := saturatedRound(o, c, up, st[c.name], r); err != nil {
				return err
			}
		}
	}
	return nil
}

// saturatedRound is one wrk run through c, with c's CPU time and peak RSS.
func saturatedRound(o options, c *contender, up *upstream, s *stats, r int) error {
	var stop func() int64
	var pids []int
	var cpu0 time.Duration
	if c.proxy {
		pids = c.pids()
		stop = sampleRSS(pids, 100*time.Millisecond)
		cpu0 = cpuTime(pids)
	}
	before := up.snapshot()
	res, err := runWrk(c.url(), c.auth, o.threads, o.conns, o.duration)
	delta := up.snapshot().sub(before)
	cpu := cpuTime(pids) - cpu0
	if stop != nil {
		s.peakKiB = max(s.peakKiB, stop())
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	s.sat = append(s.sat, satRound{res, delta, cpu})
	progress("saturated round %d %-15s %9.0f req/s  p50 %s  p99 %s  non-2xx %d  socket errors %d  upstream mismatches %d",
		r+1, c.name, res.rps, fmtDur(res.p50), fmtDur(res.p99), res.non2xx, res.socketErrors, delta.bad())
	return nil
}

// fixedRateRounds is the open-loop generator at a fixed rate, contenders
// interleaved over rounds.
func fixedRateRounds(o options, all []*contender, up *upstream, st map[string]*stats) {
	for r := 0; r < o.rateRounds; r++ {
		for _, c := range rotate(all, r) {
			before := up.snapshot()
			res := openLoop(c.url(), c.auth, o.rate, 500*time.Millisecond, o.rateFor)
			delta := up.snapshot().sub(before)
			st[c.name].rate = append(st[c.name].rate, rateRound{res, delta})
			progress("fixed-rate round %d %-15s p50 %s  p99 %s  errors %d  generator late p99 %s  upstream mismatches %d",
				r+1, c.name, fmtDur(pct(res.lat, 0.5)), fmtDur(pct(res.lat, 0.99)), res.errors, fmtDur(res.lateP99), delta.bad())
		}
	}
}

// perfRun saturates exogate once more with perf record attached to it.
func perfRun(o options, exo *contender) error {
	if _, err := exec.LookPath("perf"); err != nil {
		return err
	}
	secs := strconv.Itoa(int(o.duration.Seconds()))
	ctx, cancel := context.WithTimeout(context.Background(), o.duration+30*time.Second)
	defer cancel()
	pc := exec.CommandContext(ctx, "perf", "record", "-q", "-F", "999", "-g", "-p", strconv.Itoa(exo.cmd.Process.Pid), "-o", o.perfOut, "--", "sleep", secs)
	if err := pc.Start(); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	res, err := runWrk(exo.url(), exo.auth, o.threads, o.conns, o.duration-time.Second)
	if werr := pc.Wait(); werr != nil {
		return fmt.Errorf("perf record: %w", werr)
	}
	if err != nil {
		return err
	}
	progress("perf: exogate %.0f req/s while recorded (not counted) → %s", res.rps, o.perfOut)
	return nil
}

// sampleRSS samples the summed VmRSS of pids every interval until the
// returned function is called, which returns the peak in KiB.
func sampleRSS(pids []int, every time.Duration) func() int64 {
	var mu sync.Mutex
	var peak int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if v := rssKiB(pids); v > 0 {
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

func machine() string {
	out := func(name string, args ...string) string {
		b, err := exec.Command(name, args...).CombinedOutput()
		if err != nil && len(b) == 0 {
			return "?"
		}
		return strings.TrimSpace(string(b))
	}
	model, mem := "?", "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(strings.Split(string(b), "\n")[0], "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	first := func(s string, words int) string {
		f := strings.Fields(strings.SplitN(s, "\n", 2)[0])
		return strings.Join(f[:min(words, len(f))], " ")
	}
	return fmt.Sprintf("%s cores (`nproc`), %s, %s RAM, Linux %s; %s, %s, %s, %s",
		out("nproc"), model, mem, out("uname", "-r"),
		first(strings.TrimPrefix(out("nginx", "-v"), "nginx version: "), 1),
		first(out("haproxy", "-v"), 3), first(out("wrk", "-v"), 2), runtime.Version())
}
