package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// wrkResult is one wrk run.
type wrkResult struct {
	rps          float64
	p50, p99     time.Duration
	requests     int64
	non2xx       int64
	socketErrors int64
}

var (
	reRPS    = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	rePct    = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$`)
	reTotal  = regexp.MustCompile(`(?m)^\s+(\d+) requests in`)
	reNon2xx = regexp.MustCompile(`(?m)^\s+Non-2xx or 3xx responses: (\d+)`)
	reSock   = regexp.MustCompile(`(?m)^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// runWrk runs wrk at fixed concurrency for d against url, bounded by d+30s.
func runWrk(url, auth string, threads, conns int, d time.Duration) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", "-H", "Authorization: "+auth, url).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	return parseWrk(string(out))
}

func parseWrk(s string) (wrkResult, error) {
	var r wrkResult
	m := reRPS.FindStringSubmatch(s)
	if m == nil {
		return r, fmt.Errorf("wrk output without Requests/sec: %s", s)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range rePct.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9}[m[3]]
		d := time.Duration(v * unit)
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if m := reTotal.FindStringSubmatch(s); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reSock.FindStringSubmatch(s); m != nil {
		for _, x := range m[1:] {
			n, _ := strconv.ParseInt(x, 10, 64)
			r.socketErrors += n
		}
	}
	if r.p50 == 0 || r.p99 == 0 {
		return r, fmt.Errorf("wrk output without latency distribution: %s", s)
	}
	return r, nil
}

// openLoopResult is one fixed-rate run.
type openLoopResult struct {
	lat     []time.Duration // per successful request, from its send to the end of its body
	errors  int64           // transport errors, timeouts and non-200s
	lateP99 time.Duration   // how late the generator itself sent (p99 of send - schedule)
}

// openLoop sends rate req/s for d (rate·d requests, each at its scheduled
// time whatever the previous ones are doing: open loop, no coordinated
// omission), after a warm-up of warm at the same rate that is not recorded.
// Latency counts from the moment the request's goroutine sends it to the end
// of the body; how late that moment was against the schedule (Go's timers
// wake about every millisecond under load, so requests leave in small
// bursts) is reported apart, so that it does not blur the comparison. Each
// request has a 5s timeout; the run ends at most d+warm+10s after it starts.
func openLoop(url, auth string, rate float64, warm, d time.Duration) openLoopResult {
	tr := &http.Transport{MaxIdleConnsPerHost: 512, IdleConnTimeout: 30 * time.Second, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	nWarm := int(rate * warm.Seconds())
	n := int(rate * d.Seconds())
	total := nWarm + n
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]time.Duration, total)
	late := make([]time.Duration, total)
	ok := make([]bool, total)
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now().Add(10 * time.Millisecond)
	hardStop := start.Add(warm + d + 10*time.Second)
	for i := 0; i < total && time.Now().Before(hardStop); i++ {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			sent := time.Now()
			late[i] = sent.Sub(due)
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", auth)
			resp, err := client.Do(req)
			if err != nil {
				if i >= nWarm {
					errs.Add(1)
				}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				if i >= nWarm {
					errs.Add(1)
				}
				return
			}
			lat[i] = time.Since(sent)
			ok[i] = true
		}(i, due)
	}
	wg.Wait()
	var r openLoopResult
	r.errors = errs.Load()
	lates := make([]time.Duration, 0, n)
	for i := nWarm; i < total; i++ {
		lates = append(lates, late[i])
		if ok[i] {
			r.lat = append(r.lat, lat[i])
		}
	}
	r.lateP99 = pct(lates, 0.99)
	return r
}

// pct sorts ds and returns its q quantile (nearest rank).
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	k := int(q*float64(len(ds))+0.5) - 1
	if k < 0 {
		k = 0
	}
	if k >= len(ds) {
		k = len(ds) - 1
	}
	return ds[k]
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDur(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs))
}

// fmtDur prints a latency in ms with three decimals, or µs below 1ms.
func fmtDur(d time.Duration) string {
	if d < 0 {
		return "−" + fmtDur(-d)
	}
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.3f ms", float64(d)/1e6)
}

func fmtAdded(d time.Duration) string {
	if d < 0 {
		return fmtDur(d)
	}
	return "+" + fmtDur(d)
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func trimLines(s string) string { return strings.TrimRight(s, "\n") }
