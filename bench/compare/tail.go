package main

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// tailMain is `compare tail`: the tail at a moderate rate measured closed
// loop, as a client with a fixed pool of callers sees it — hey with 20
// workers, each sending at most 100 requests per second and waiting for
// every answer before the next — against exogate, nginx and HAProxy, each
// writing one JSON access line per request to a file (not /dev/null: a write
// to a real file can wait). The contenders are interleaved over rounds, the
// order rotated each round; p50 and p99 are reported as ratios to nginx's
// and HAProxy's from the same run. With -patched, a second exogate build
// (the same source with a change applied) is measured beside the first.
func tailMain(args []string) error {
	fs := flag.NewFlagSet("compare tail", flag.ExitOnError)
	var o tailOptions
	fs.StringVar(&o.exogate, "exogate", "", "path to the exogate binary")
	fs.StringVar(&o.patched, "patched", "", "path to a second exogate binary, measured beside the first as \"exogate (patched)\"")
	fs.StringVar(&o.profiled, "profiled", "", "path to an exogate binary built with bench/compare/exogate_profile.go.in: one more run, not counted, under its CPU profile and execution trace")
	fs.StringVar(&o.profileDir, "profile-dir", "", "where the profiled run writes cpu.out and trace.out")
	fs.BoolVar(&o.devNull, "devnull", false, "access lines to /dev/null instead of files (as the open-loop comparison runs them)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds, contenders interleaved")
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "each hey run (-z)")
	fs.IntVar(&o.workers, "c", 20, "hey workers (-c)")
	fs.Float64Var(&o.perWorker, "q", 100, "requests per second per worker (-q)")
	_ = fs.Parse(args)
	if o.exogate == "" || o.rounds < 1 || o.rounds > 20 || o.duration < time.Second || o.duration > 2*time.Minute ||
		o.workers < 1 || o.perWorker <= 0 {
		return fmt.Errorf("usage: compare tail -exogate PATH [-patched PATH] [-rounds 1..20] [-duration 1s..2m] [-c N] [-q RATE]")
	}
	dir, err := os.MkdirTemp("", "exogate-tail")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	_ = os.Chmod(dir, 0o755) // nginx workers run as nobody
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+token))
	up, err := startUpstream(wantAuth)
	if err != nil {
		return err
	}
	defer up.close()
	cs, err := tailContenders(dir, up.addr(), wantAuth, o)
	if err != nil {
		return err
	}
	for _, c := range cs {
		defer c.stop()
	}
	res, err := tailRounds(cs, up, o)
	if err != nil {
		return err
	}
	printTail(cs, res, o)
	if o.profiled != "" {
		return tailProfile(dir, up.addr(), o)
	}
	return nil
}

type tailOptions struct {
	exogate, patched     string
	profiled, profileDir string
	rounds, workers      int
	duration             time.Duration
	perWorker            float64
	devNull              bool
}

// tailContenders starts exogate (and its patched build), nginx and HAProxy,
// each with its access log in a file of its own under dir.
func tailContenders(dir, up, wantAuth string, o tailOptions) ([]*contender, error) {
	exo, err := newExogate(dir, "exogate", o.exogate, up, key, token, nil)
	if err != nil {
		return nil, err
	}
	cs := []*contender{exo}
	if o.patched != "" {
		p, err := newExogate(dir, "exogate (patched)", o.patched, up, key, token, nil)
		if err != nil {
			return nil, err
		}
		cs = append(cs, p)
	}
	ngxLog := filepath.Join(dir, "nginx-access.log")
	if o.devNull {
		ngxLog = "/dev/null"
	}
	ngx, err := newNginx(dir, up, wantAuth, ngxLog, true)
	if err != nil {
		return nil, err
	}
	hap, err := newHAProxy(dir, up, wantAuth, true)
	if err != nil {
		return nil, err
	}
	cs = append(cs, ngx, hap)
	for _, c := range cs {
		if c.name != "nginx" && !o.devNull {
			logToFile(c, filepath.Join(dir, strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(c.name)+"-access.log"))
		}
		if _, _, err := c.start(); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// logToFile sends the contender's standard output and error, where exogate
// and HAProxy write their access lines, to file (appended, created once).
func logToFile(c *contender, file string) {
	next := c.newCmd
	if c.errLog == "" {
		c.errLog = file // exogate's errors are JSON lines there too
	}
	c.newCmd = func() *exec.Cmd {
		cmd := next()
		f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return cmd // then to /dev/null; the report names the file sizes
		}
		cmd.Stdout = f
		if cmd.Stderr == nil {
			cmd.Stderr = f
		}
		return cmd
	}
}

// tailRound is one hey run through one contender.
type tailRound struct {
	lat        []time.Duration // per request, successful ones
	errors     int64
	up         counts
	cpu        time.Duration
	vol, invol int64 // context switches of the contender's threads during the run
}

// tailRounds runs hey through every contender, rounds interleaved, order
// rotated each round.
func tailRounds(cs []*contender, up *upstream, o tailOptions) (map[string][]tailRound, error) {
	res := map[string][]tailRound{}
	for _, c := range cs { // warm-up, not recorded
		if _, _, err := runHey(c.url(), c.auth, o.workers, o.perWorker, 2*time.Second); err != nil {
			return nil, fmt.Errorf("%s warm-up: %w", c.name, err)
		}
	}
	for r := 0; r < o.rounds; r++ {
		for i := range cs {
			c := cs[(i+r)%len(cs)]
			pids := c.pids()
			cpu0, before := cpuTime(pids), up.snapshot()
			vol0, invol0 := ctxSwitches(pids)
			lat, errs, err := runHey(c.url(), c.auth, o.workers, o.perWorker, o.duration)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			vol1, invol1 := ctxSwitches(pids)
			tr := tailRound{lat: lat, errors: errs, up: up.snapshot().sub(before), cpu: cpuTime(pids) - cpu0,
				vol: int64(vol1 - vol0), invol: int64(invol1 - invol0)}
			res[c.name] = append(res[c.name], tr)
			progress("tail round %d %-18s n %d  p50 %s  p99 %s  p99.9 %s  errors %d  cpu %.1f µs/req  ctx switches %.2f/req (involuntary %.2f)",
				r+1, c.name, len(lat), fmtDur(pct(lat, 0.5)), fmtDur(pct(lat, 0.99)), fmtDur(pct(lat, 0.999)), errs,
				perReq(tr.cpu, int64(len(lat))), perN(tr.vol+tr.invol, len(lat)), perN(tr.invol, len(lat)))
		}
	}
	return res, nil
}

func perN(x int64, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(x) / float64(n)
}

// runHey runs hey -z d -c workers -q perWorker against url, bounded by
// d+30s, and returns the latency of every 200 and the count of the rest.
func runHey(url, auth string, workers int, perWorker float64, d time.Duration) ([]time.Duration, int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "hey", "-z", d.String(), "-c", strconv.Itoa(workers),
		"-q", strconv.FormatFloat(perWorker, 'f', -1, 64), "-disable-compression", "-o", "csv",
		"-H", "Authorization: "+auth, url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, err
	}
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	lat, errs, perr := parseHeyCSV(out)
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return nil, 0, fmt.Errorf("hey: %w", err)
	}
	return lat, errs, perr
}

// parseHeyCSV reads hey's -o csv: response-time (seconds) first, status
// code seventh.
func parseHeyCSV(r io.Reader) ([]time.Duration, int64, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	var lat []time.Duration
	var errs int64
	for first := true; ; first = false {
		rec, err := cr.Read()
		if err == io.EOF {
			return lat, errs, nil
		}
		if err != nil {
			return lat, errs, fmt.Errorf("hey csv: %w", err)
		}
		if first || len(rec) < 7 {
			continue // the header line
		}
		secs, err1 := strconv.ParseFloat(rec[0], 64)
		code, err2 := strconv.Atoi(rec[6])
		if err1 != nil || err2 != nil || code != 200 {
			errs++
			continue
		}
		lat = append(lat, time.Duration(secs*1e9))
	}
}

// ctxSwitches sums voluntary and involuntary context switches over every
// thread of pids (/proc/PID/task/TID/status).
func ctxSwitches(pids []int) (vol, invol int) {
	for _, p := range pids {
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(p) + "/task/*/status")
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(line, ":")
				if !ok {
					continue
				}
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				switch k {
				case "voluntary_ctxt_switches":
					vol += n
				case "nonvoluntary_ctxt_switches":
					invol += n
				}
			}
		}
	}
	return vol, invol
}

// tailProfile runs the profiling build of exogate once more under the same
// load: its CPU profile over the middle of the run, then an execution trace
// of two seconds, written to o.profileDir.
func tailProfile(dir, up string, o tailOptions) error {
	c, err := newExogate(dir, "exogate (profiled)", o.profiled, up, key, token, []string{
		"EXOGATE_BENCH_CPUPROFILE=" + filepath.Join(o.profileDir, "cpu.out"),
		"EXOGATE_BENCH_TRACE=" + filepath.Join(o.profileDir, "trace.out"),
		"EXOGATE_BENCH_PROFILE_AFTER=2s", "EXOGATE_BENCH_PROFILE_FOR=" + (o.duration - 6*time.Second).String(),
	})
	if err != nil {
		return err
	}
	logToFile(c, filepath.Join(dir, "exogate-profiled-access.log"))
	if _, _, err := c.start(); err != nil {
		return err
	}
	defer c.stop()
	lat, errs, err := runHey(c.url(), c.auth, o.workers, o.perWorker, o.duration)
	if err != nil {
		return err
	}
	progress("profiled run: n %d  p50 %s  p99 %s  errors %d (not counted)", len(lat), fmtDur(pct(lat, 0.5)), fmtDur(pct(lat, 0.99)), errs)
	return nil
}

// printTail prints the Markdown table: pooled percentiles, and exogate's as
// ratios to nginx's and HAProxy's.
func printTail(cs []*contender, res map[string][]tailRound, o tailOptions) {
	fmt.Printf("Closed loop: `hey -z %s -c %d -q %g` (%.0f req/s at most), GET `%s`, every contender writing one JSON access line per request to %s; %d rounds, contenders interleaved, order rotated each round, after a 2 s unrecorded warm-up each. Percentiles over all rounds' samples pooled; per round in brackets. Machine: %s.\n\n",
		o.duration, o.workers, o.perWorker, float64(o.workers)*o.perWorker, path, map[bool]string{false: "a file", true: "`/dev/null`"}[o.devNull], o.rounds, machine())
	fmt.Println("| contender | samples | p50 | p99 | p99.9 | p99 per round | CPU per request | context switches per request (involuntary) | errors | upstream mismatches |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	pooled := map[string][]time.Duration{}
	for _, c := range cs {
		var lat []time.Duration
		var rounds []string
		var cpu time.Duration
		var errs, bad, vol, invol int64
		for _, r := range res[c.name] {
			lat = append(lat, r.lat...)
			rounds = append(rounds, fmtDur(pct(r.lat, 0.99)))
			cpu += r.cpu
			errs += r.errors
			bad += r.up.bad()
			vol += r.vol
			invol += r.invol
		}
		pooled[c.name] = lat
		fmt.Printf("| %s | %d | %s | %s | %s | %s | %.1f µs | %.2f (%.2f) | %d | %d |\n", c.name, len(lat),
			fmtDur(pct(lat, 0.5)), fmtDur(pct(lat, 0.99)), fmtDur(pct(lat, 0.999)), strings.Join(rounds, " / "),
			perReq(cpu, int64(len(lat))), perN(vol+invol, len(lat)), perN(invol, len(lat)), errs, bad)
	}
	fmt.Println()
	fmt.Println("| ratio | p50 | p99 | p99 per round |")
	fmt.Println("|---|---|---|---|")
	for _, c := range cs {
		if !strings.HasPrefix(c.name, "exogate") {
			continue
		}
		for _, peer := range []string{"nginx", "HAProxy"} {
			fmt.Printf("| %s ÷ %s | %.2f | %.2f | %s |\n", c.name, peer,
				ratio(pct(pooled[c.name], 0.5), pct(pooled[peer], 0.5)), ratio(pct(pooled[c.name], 0.99), pct(pooled[peer], 0.99)),
				roundRatios(res[c.name], res[peer]))
		}
	}
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// roundRatios is a's p99 over b's, round by round.
func roundRatios(a, b []tailRound) string {
	var s []string
	for i := range a {
		if i < len(b) {
			s = append(s, fmt.Sprintf("%.2f", ratio(pct(a[i].lat, 0.99), pct(b[i].lat, 0.99))))
		}
	}
	return strings.Join(s, " / ")
}
