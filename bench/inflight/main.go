// Command inflight measures what one request in flight costs exogate in
// memory: N requests are held at once, either waiting in the limiter's line
// or sent upstream and waiting for Exotel's answer, and the gateway's
// resident memory and Go heap and stacks are read from its metrics before
// and while they are held. The numbers size max_in_flight's default
// (docs/operations.md).
//
// Usage: go run ./bench/inflight [-n 1000] [-exogate PATH]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	n := flag.Int("n", 1000, "requests held at once")
	bin := flag.String("exogate", "", "exogate binary (default: built from this checkout)")
	flag.Parse()
	if err := run(*n, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "inflight:", err)
		os.Exit(1)
	}
}

func run(n int, bin string) error {
	dir, err := os.MkdirTemp("", "inflight")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "exogate")
		build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return err
		}
	}
	// The stand-in Exotel holds every call until released.
	release := make(chan struct{})
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(upLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			<-release
		}
		io.WriteString(w, `{"Call":{}}`)
	}))
	for _, mode := range []string{"line", "upstream"} {
		if err := measure(mode, n, bin, dir, upLn.Addr().String()); err != nil {
			return err
		}
	}
	close(release)
	return nil
}

func measure(mode string, n int, bin, dir, up string) error {
	limit := "limit: 2, period: 1h, burst: 1"
	if mode == "upstream" {
		limit = "limit: 1000000, period: 1m, burst: 100000"
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
log: {level: info}
max_in_flight: %d
server: {max_connections: %d, write_timeout: 10m}
upstream:
  allow_insecure_http: true
  timeout: 5m
  regions: {local: {api: "http://%s", ccm: "http://%s"}}
limits:
  max_wait: 5m
  buckets: {voice_v1: {%s}}
accounts:
  - sid: acme
    region: local
    credentials: {source: env, api_key_env: K, api_token_env: T}
`, n+10, n+10, up, up, limit)
	cfgPath := filepath.Join(dir, mode+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-config", cfgPath)
	cmd.Env = append(os.Environ(), "K=key", "T=token")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	addr, admin, err := addresses(stderr)
	if err != nil {
		cmd.Wait()
		return err
	}
	if mode == "line" {
		// Take the one token so that every request after waits.
		if resp, err := http.Get("http://" + addr + "/v1/Accounts/acme/Calls.json"); err == nil {
			resp.Body.Close()
		}
	}
	time.Sleep(time.Second)
	before := metrics(admin)
	var wg sync.WaitGroup
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := "From=0999&To=0888&CallerId=0777"
			fmt.Fprintf(c, "POST /v1/Accounts/acme/Calls/connect.json HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}()
	}
	wg.Wait()
	time.Sleep(3 * time.Second) // every request has reached its wait
	during := metrics(admin)
	for _, c := range conns {
		c.Close()
	}
	per := func(k string) float64 { return (during[k] - before[k]) / float64(n) / 1024 }
	fmt.Printf("%-9s n=%d  per request: RSS %.1f KiB, heap in use %.1f KiB, stacks %.1f KiB\n",
		mode, n, per("process_resident_memory_bytes"), per("go_memstats_heap_inuse_bytes"), per("go_memstats_stack_inuse_bytes"))
	return nil
}

// addresses reads the proxy and admin addresses from the start-up log.
func addresses(r io.Reader) (addr, admin string, err error) {
	sc := bufio.NewScanner(r)
	var last string
	for sc.Scan() {
		line := sc.Text()
		last = line
		if i := strings.Index(line, `"addr":"`); i >= 0 && addr == "" {
			addr = strings.SplitN(line[i+8:], `"`, 2)[0]
		}
		if i := strings.Index(line, `"admin_addr":"`); i >= 0 {
			admin = strings.SplitN(line[i+14:], `"`, 2)[0]
		}
		if addr != "" && admin != "" {
			go io.Copy(io.Discard, r)
			return addr, admin, nil
		}
	}
	return "", "", fmt.Errorf("exogate exited before listening: %s", last)
}

func metrics(admin string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			v, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = v
		}
	}
	return out
}
