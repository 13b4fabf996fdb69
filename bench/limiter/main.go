// Command limiter measures exogate's shared rate limit end to end, on this
// machine only (loopback): three gateway replicas share one account through
// Redis in front of a fake Exotel that enforces the limit itself, under
// saturating demand for about two periods. It reports
//
//   - the most requests Exotel saw in any sliding window, divided by the
//     limit (goal ≤ 1.0),
//   - requests delivered divided by limit × periods (goal ≥ 0.99 over the
//     run's periods), and
//   - the latency the Redis limiter adds over the in-memory one, p50 and p99,
//     measured in the same run with limits that do not bind.
//
// Run it with bench/limiter.sh. Every load loop is bounded in count and time.
package main

import (
	"bufio"
	"context"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/exogate/exogate/internal/fakeexotel"
)

const (
	key   = "benchkey0123456789"
	token = "benchtoken0123456789"
)

func main() {
	bin := flag.String("exogate", "", "path to the exogate binary")
	limit := flag.Int("limit", 200, "requests per period for the account's bucket")
	period := flag.Duration("period", 10*time.Second, "the bucket's period")
	periods := flag.Int("periods", 2, "periods of saturating demand")
	replicas := flag.Int("replicas", 3, "gateway replicas sharing Redis")
	latencyN := flag.Int("latency-requests", 3000, "requests per backend for the latency comparison")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: limiter -exogate PATH [flags]")
		os.Exit(2)
	}
	if err := run(*bin, *limit, *period, *periods, *replicas, *latencyN); err != nil {
		fmt.Fprintln(os.Stderr, "limiter:", err)
		os.Exit(1)
	}
}

func run(bin string, limit int, period time.Duration, periods, replicas, latencyN int) error {
	dir, err := os.MkdirTemp("", "exogate-limiter-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	redisAddr, stopRedis, err := startRedis(dir)
	if err != nil {
		return err
	}
	defer stopRedis()

	fake := fakeexotel.New("exotel", fakeexotel.Account{SID: "acme", Key: key, Token: token})
	up := httptest.NewTLSServer(fake)
	defer up.Close()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o600); err != nil {
		return err
	}
	s := setup{dir: dir, caFile: caFile, upstream: up.URL, redisAddr: redisAddr, replicas: replicas}

	memLat, redisLat, err := measureLatency(bin, s, latencyN)
	if err != nil {
		return err
	}
	fake.Reset()
	fake.SetLimit(limit, period)
	f, err := measureFleet(bin, s, fake, limit, period, periods)
	if err != nil {
		return err
	}
	f.print(limit, period, periods, replicas)
	printLatency(memLat, redisLat)
	return nil
}

// setup is what every gateway of the benchmark is configured with.
type setup struct {
	dir, caFile, upstream, redisAddr string
	replicas                         int
}

// config writes a gateway's configuration file and returns its path.
func (s setup) config(name, backend string, limit int, period time.Duration) (string, error) {
	p := filepath.Join(s.dir, name+".yaml")
	return p, os.WriteFile(p, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: ""}
upstream: {ca_file: %s, regions: {singapore: {api: %q, ccm: %q}}}
accounts: [{sid: acme, credentials: {source: env, api_key_env: K, api_token_env: T}}]
limits:
  backend: %s
  redis: {address: %q, key_prefix: "bench-%s:"}
  replicas: %d
  max_wait: 1s
  buckets: {voice_v1: {limit: %d, period: %s, burst: 1}}
`, s.caFile, s.upstream, s.upstream, backend, s.redisAddr, name, s.replicas, limit, period)), 0o600)
}

// measureLatency times requests through one gateway with the memory
// limiter and one with Redis, limits far above the load, interleaved.
func measureLatency(bin string, s setup, n int) (memLat, redisLat []time.Duration, err error) {
	memCfg, err := s.config("latency-memory", "memory", 1000000, time.Second)
	if err != nil {
		return nil, nil, err
	}
	redisCfg, err := s.config("latency-redis", "redis", 1000000, time.Second)
	if err != nil {
		return nil, nil, err
	}
	memGW, err := startGateway(bin, memCfg)
	if err != nil {
		return nil, nil, err
	}
	defer memGW.stop()
	redisGW, err := startGateway(bin, redisCfg)
	if err != nil {
		return nil, nil, err
	}
	defer redisGW.stop()
	for round := 0; round < 3; round++ {
		memLat = append(memLat, latencies(memGW.base, n/3, 8)...)
		redisLat = append(redisLat, latencies(redisGW.base, n/3, 8)...)
	}
	return memLat, redisLat, nil
}

// fleetResult is what the fake Exotel saw of the shared budget.
type fleetResult struct {
	rate     float64 // demand, req/s
	maxWin   int     // most requests in any period
	accepted int     // delivered within the run's periods, excess not counted
	excess   int64
	statuses map[int]int
}

// measureFleet drives replicas sharing one Redis budget at three times the
// allowed rate, spread over the replicas.
func measureFleet(bin string, s setup, fake *fakeexotel.Server, limit int, period time.Duration, periods int) (fleetResult, error) {
	fleetCfg, err := s.config("fleet", "redis", limit, period)
	if err != nil {
		return fleetResult{}, err
	}
	var fleet []*gateway
	for i := 0; i < s.replicas; i++ {
		g, err := startGateway(bin, fleetCfg)
		if err != nil {
			return fleetResult{}, err
		}
		defer g.stop()
		fleet = append(fleet, g)
	}
	duration := time.Duration(periods) * period
	rate := 3 * float64(limit) / period.Seconds()
	statuses := drive(fleet, int(rate*duration.Seconds()), duration)

	reqs := fake.Requests()
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].At.Before(reqs[j].At) })
	// Delivered within the run's periods, counted from the first arrival
	// (callers still queued when the demand stops arrive later).
	accepted := 0
	if len(reqs) > 0 {
		end := reqs[0].At.Add(duration)
		for _, r := range reqs {
			if !r.At.After(end) {
				accepted++
			}
		}
	}
	accepted -= int(fake.Excess())
	return fleetResult{rate: rate, maxWin: fake.MaxInWindow(period), accepted: accepted, excess: fake.Excess(), statuses: statuses}, nil
}

func (f fleetResult) print(limit int, period time.Duration, periods, replicas int) {
	fmt.Printf("exogate shared limiter benchmark (%d replicas, limit %d per %s, %d periods, demand %.0f req/s)\n", replicas, limit, period, periods, f.rate)
	fmt.Printf("  max requests in any %s window / limit   %d / %d = %.3f   (goal <= 1.0)\n", period, f.maxWin, limit, float64(f.maxWin)/float64(limit))
	fmt.Printf("  delivered / (limit x periods)            %d / %d = %.3f   (goal >= 0.99)\n", f.accepted, limit*periods, float64(f.accepted)/float64(limit*periods))
	fmt.Printf("  requests over Exotel's limit (excess)    %d\n", f.excess)
	fmt.Printf("  client statuses                          %v\n", f.statuses)
}

func printLatency(memLat, redisLat []time.Duration) {
	p := func(ds []time.Duration, q float64) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[int(q*float64(len(ds)-1))]
	}
	fmt.Printf("latency through one gateway, limits not binding (%d requests each, 8 clients, interleaved)\n", len(memLat))
	m50, m99, r50, r99 := p(memLat, 0.50), p(memLat, 0.99), p(redisLat, 0.50), p(redisLat, 0.99)
	fmt.Printf("  memory limiter   p50 %8s   p99 %8s\n", m50.Round(time.Microsecond), m99.Round(time.Microsecond))
	fmt.Printf("  redis limiter    p50 %8s   p99 %8s\n", r50.Round(time.Microsecond), r99.Round(time.Microsecond))
	fmt.Printf("  added by redis   p50 %8s   p99 %8s   (ratio p50 %.2f, p99 %.2f)\n",
		(r50 - m50).Round(time.Microsecond), (r99 - m99).Round(time.Microsecond), float64(r50)/float64(m50), float64(r99)/float64(m99))
}

// drive sends total requests spread evenly over d, round robin.
func drive(fleet []*gateway, total int, d time.Duration) map[int]int {
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	tick := time.NewTicker(d / time.Duration(total))
	defer tick.Stop()
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < total; i++ {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := -1
			if resp, err := client.Get(fleet[i%len(fleet)].base + "/v1/Accounts/acme/Calls.json"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			statuses[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return statuses
}

// latencies sends n requests from c clients and returns each one's latency.
func latencies(base string, n, c int) []time.Duration {
	out := make([]time.Duration, n)
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c}, Timeout: 10 * time.Second}
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= n {
					return
				}
				start := time.Now()
				if resp, err := client.Get(base + "/v1/Accounts/acme/Calls.json"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				out[k] = time.Since(start)
			}
		}()
	}
	wg.Wait()
	return out
}

type gateway struct {
	cmd  *exec.Cmd
	base string
}

var addrRE = regexp.MustCompile(`"addr":"([^"]+)"`)

func startGateway(bin, cfg string) (*gateway, error) {
	cmd := exec.Command(bin, "-config", cfg)
	cmd.Env = []string{"K=" + key, "T=" + token}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		g := &gateway{cmd: cmd, base: "http://" + a}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if resp, err := http.Get(g.base + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return g, nil
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		g.stop()
		return nil, fmt.Errorf("gateway never became ready")
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("gateway did not start")
	}
}

func (g *gateway) stop() {
	_ = g.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = g.cmd.Process.Kill()
	}
}

// startRedis runs redis-server on a free loopback port.
func startRedis(dir string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("redis-server: %w (apt-get install -y redis-server)", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := net.Dial("tcp", addr); err == nil {
			fmt.Fprint(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return addr, stop, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("redis-server did not answer on %s", addr)
}
