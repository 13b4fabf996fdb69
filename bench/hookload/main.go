// Command hookload measures exogate's callback listener on loopback: how
// fast a callback is acknowledged (committed and fsynced before the 200),
// and whether the heap stays flat while a route's target is down. Each
// callback carries a CallSid of its own, so that every one is stored.
//
// Three loads, each against a fresh store:
//
//   - paced: an open loop at -rate callbacks/s for -paced, latency counted
//     from the moment each request was due (a late send counts as late);
//   - saturated: -conns clients in a closed loop for -saturated each;
//   - down: the target refuses connections while -down callbacks are
//     acknowledged; heap in use, resident memory and the store's size are
//     read at each of -samples.
//
// The paced and saturated loads are repeated against exogate's own
// /healthz on the proxy listener (same process and HTTP server, nothing
// parsed or stored) as the baseline of the same run. Prints a Markdown
// report on stdout, progress on stderr.
//
// Usage: go run ./bench/hookload -exogate PATH [-rate 200] [-paced 20s] ...
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

type options struct {
	bin       string
	rate      float64
	paced     time.Duration
	saturated time.Duration
	conns     []int
	down      int
	downConns int
	samples   []int
}

func main() {
	var o options
	conns, samples := "16,64", "1000,10000,50000,100000"
	flag.StringVar(&o.bin, "exogate", "", "exogate binary (required)")
	flag.Float64Var(&o.rate, "rate", 200, "paced load: callbacks per second")
	flag.DurationVar(&o.paced, "paced", 20*time.Second, "paced load: duration")
	flag.DurationVar(&o.saturated, "saturated", 15*time.Second, "saturated load: duration per connection count")
	flag.StringVar(&conns, "conns", conns, "saturated load: connection counts")
	flag.IntVar(&o.down, "down", 100000, "callbacks acknowledged while the target is down")
	flag.IntVar(&o.downConns, "down-conns", 16, "connections for the target-down load")
	flag.StringVar(&samples, "samples", samples, "target-down load: read memory after this many callbacks")
	flag.Parse()
	var err error
	if o.conns, err = ints(conns); err == nil {
		o.samples, err = ints(samples)
	}
	if err == nil && o.bin == "" {
		err = errors.New("-exogate is required")
	}
	if err == nil {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hookload:", err)
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q: not a positive count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "hookload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var delivered atomic.Int64
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer target.Close()
	go http.Serve(target, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		delivered.Add(1)
	}))
	up := "http://" + target.Addr().String() + "/exotel/calls"
	fmt.Printf("Loopback, %s; exogate %s.\n\n", machine(), o.bin)
	if err := fsyncFloor(dir, 500); err != nil {
		return err
	}
	fmt.Println("| load | against | requests | acked/s | p50 | p99 | max | errors | delivered by the end, pending |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	if err := pacedRuns(o, dir, up); err != nil {
		return err
	}
	for _, c := range o.conns {
		if err := saturatedRuns(o, dir, up, c); err != nil {
			return err
		}
	}
	fmt.Printf("\nTarget up: %d deliveries reached it over the runs above.\n", delivered.Load())
	return downRun(o, dir)
}

func pacedRuns(o options, dir, up string) error {
	g, err := start(o.bin, dir, "paced", up)
	if err != nil {
		return err
	}
	defer g.stop()
	label := fmt.Sprintf("paced %.0f/s, %s", o.rate, o.paced)
	row(label, "/healthz (baseline)", paced(g.healthz, nil, o.rate, o.paced), "–")
	row(label, "callbacks", paced(g.hook, g.callback, o.rate, o.paced), g.queue())
	return nil
}

func saturatedRuns(o options, dir, up string, conns int) error {
	g, err := start(o.bin, dir, fmt.Sprintf("sat%d", conns), up)
	if err != nil {
		return err
	}
	defer g.stop()
	label := fmt.Sprintf("saturated, %d conns, %s", conns, o.saturated)
	row(label, "/healthz (baseline)", closed(g.healthz, nil, conns, o.saturated, 0), "–")
	row(label, "callbacks", closed(g.hook, g.callback, conns, o.saturated, 0), g.queue())
	return nil
}

func downRun(o options, dir string) error {
	// A port that was just free and is closed again: every delivery is
	// refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	up := "http://" + ln.Addr().String() + "/exotel/calls"
	ln.Close()
	g, err := start(o.bin, dir, "down", up)
	if err != nil {
		return err
	}
	defer g.stop()
	fmt.Printf("\nTarget down (connection refused), %d connections:\n\n", o.downConns)
	fmt.Println("| callbacks acked | heap in use | heap allocated | RSS: anonymous | RSS: file (the store's map) | store file | pending | delivery attempts | acked/s, p99 since last row |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	sample := func(n int, r result) {
		m := scrape(g.admin)
		fi, _ := os.Stat(g.store)
		var size int64
		if fi != nil {
			size = fi.Size()
		}
		speed := "–"
		if r.n > 0 {
			speed = fmt.Sprintf("%.0f, %s", r.rate(), ms(r.pct(0.99)))
		}
		anon, file := g.rss()
		fmt.Printf("| %d | %s | %s | %s | %s | %s | %.0f | %.0f | %s |\n", n,
			mib(m["go_memstats_heap_inuse_bytes"]), mib(m["go_memstats_heap_alloc_bytes"]),
			mib(anon), mib(file), mib(float64(size)),
			m[`exogate_webhooks_pending{route="calls"}`], m["exogate_webhooks_delivery_attempts_total_sum"], speed)
	}
	sample(0, result{})
	done := 0
	for _, s := range o.samples {
		if s > o.down {
			s = o.down
		}
		if s <= done {
			continue
		}
		r := closed(g.hook, g.callback, o.downConns, 0, s-done)
		if r.errs > 0 {
			return fmt.Errorf("target down: %d of %d callbacks not acknowledged: %s", r.errs, r.n, r.firstErr)
		}
		done = s
		sample(done, r)
	}
	return nil
}

// fsyncFloor times n writes of 4 KiB, each followed by an fsync, one at a
// time, in dir: the disk's floor under an acknowledgement.
func fsyncFloor(dir string, n int) error {
	f, err := os.Create(filepath.Join(dir, "fsync"))
	if err != nil {
		return err
	}
	defer f.Close()
	var rec recorder
	page := make([]byte, 4096)
	start := time.Now()
	for i := range n {
		t := time.Now()
		if _, err := f.WriteAt(page, int64(i%64)*4096); err != nil {
			return err
		}
		rec.add(time.Since(t), f.Sync())
	}
	r := rec.result(time.Since(start))
	fmt.Printf("The disk's floor: %d × (write 4 KiB, fsync), one at a time: p50 %s, p99 %s, max %s.\n\n",
		n, ms(r.pct(0.5)), ms(r.pct(0.99)), ms(r.pct(1)))
	return nil
}

func row(label, against string, r result, queue string) {
	fmt.Printf("| %s | %s | %d | %.0f | %s | %s | %s | %d | %s |\n", label, against, r.n, r.rate(),
		ms(r.pct(0.50)), ms(r.pct(0.99)), ms(r.pct(1)), r.errs, queue)
	if r.errs > 0 {
		fmt.Fprintf(os.Stderr, "hookload: %s against %s: %d errors, first: %s\n", label, against, r.errs, r.firstErr)
	}
}

// machine describes the processor count and the root file system's disk.
func machine() string {
	out, _ := exec.Command("sh", "-c", `echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))," \
"$(df --output=source,fstype / | tail -1 | tr -s ' ')," \
"load average $(cut -d' ' -f1-3 /proc/loadavg)"`).Output()
	return strings.TrimSpace(string(out))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// gateway is one running exogate with one call route.
type gateway struct {
	cmd                  *exec.Cmd
	healthz, hook, admin string
	store                string
	run                  string       // makes CallSids unique across gateways
	seq                  atomic.Int64 // numbers the callbacks
	exited               chan struct{}
}

func start(bin, dir, name, target string) (*gateway, error) {
	store := filepath.Join(dir, name+".db")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
upstream:
  allow_insecure_http: true
  regions: {local: {api: "http://127.0.0.1:9", ccm: "http://127.0.0.1:9"}}
accounts:
  - {sid: acme, region: local, credentials: {source: env, api_key_env: K, api_token_env: T}}
webhooks:
  listen: 127.0.0.1:0
  public_url: http://hooks.invalid
  allow_insecure_http: true
  store: {path: %q}
  routes:
    - {name: calls, account: acme, kind: call, target: %q, signing_secret_env: S}
`, store, target)
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "K=key", "T=token", "S=whsec_"+strings.Repeat("A", 44),
		"EXOGATE_WEBHOOK_URL_SECRET="+strings.Repeat("s", 40))
	urlCmd := exec.Command(bin, "webhooks", "url", "-config", cfgPath, "calls")
	urlCmd.Env, urlCmd.Stderr = env, os.Stderr
	url, err := urlCmd.Output()
	if err != nil {
		return nil, fmt.Errorf("exogate webhooks url: %w", err)
	}
	cmd := exec.Command(bin, "-config", cfgPath)
	cmd.Env = env
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &gateway{cmd: cmd, store: store, run: name, exited: make(chan struct{})}
	addrs, err := addresses(stderr, "addr", "admin_addr", "webhooks_addr")
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	go func() { cmd.Wait(); close(g.exited) }()
	path := strings.TrimPrefix(strings.TrimSpace(string(url)), "http://hooks.invalid")
	g.healthz, g.admin, g.hook = "http://"+addrs[0]+"/healthz", addrs[1], "http://"+addrs[2]+path
	return g, nil
}

// rss reads the process's resident memory, anonymous (heap, stacks,
// runtime) and file-backed (mostly the store's memory map, which the
// kernel may drop at will), from /proc.
func (g *gateway) rss() (anon, file float64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 3 && (f[0] == "RssAnon:" || f[0] == "RssFile:") {
			kib, _ := strconv.ParseFloat(f[1], 64)
			if f[0] == "RssAnon:" {
				anon = kib * 1024
			} else {
				file = kib * 1024
			}
		}
	}
	return anon, file
}

// queue reads how many callbacks were delivered and how many are pending.
func (g *gateway) queue() string {
	m := scrape(g.admin)
	return fmt.Sprintf("%.0f, %.0f", m["exogate_webhooks_delivered_total"], m[`exogate_webhooks_pending{route="calls"}`])
}

func (g *gateway) stop() {
	g.cmd.Process.Signal(os.Interrupt)
	select {
	case <-g.exited:
	case <-time.After(30 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
	}
}

// callback is the body of the next callback: an Exotel call status
// callback, form-encoded, with a CallSid of its own.
func (g *gateway) callback() string {
	i := g.seq.Add(1)
	sid := fmt.Sprintf("%032x", uint64(i)<<8|uint64(len(g.run)))
	sid = g.run + sid[len(g.run):]
	return "CallSid=" + sid + "&EventType=terminal&Status=completed&Direction=outbound-api" +
		"&From=09999999999&To=08888888888&PhoneNumberSid=08047112233&DateCreated=2026-12-05+10%3A00%3A00" +
		"&DateUpdated=2026-12-05+10%3A01%3A05&StartTime=2026-12-05+10%3A00%3A01&EndTime=2026-12-05+10%3A01%3A05" +
		"&ConversationDuration=60&RecordingUrl=&CustomField=order-" + strconv.FormatInt(i, 10)
}

// addresses reads the listeners' addresses (the log fields keys) from the
// start-up log, then discards the rest of it.
func addresses(r io.Reader, keys ...string) ([]string, error) {
	sc := bufio.NewScanner(r)
	out := make([]string, len(keys))
	var last string
	for sc.Scan() {
		last = sc.Text()
		for i, k := range keys {
			if j := strings.Index(last, `"`+k+`":"`); j >= 0 && out[i] == "" {
				out[i] = strings.SplitN(last[j+len(k)+4:], `"`, 2)[0]
			}
		}
		if !slices.Contains(out, "") {
			go io.Copy(io.Discard, r)
			return out, nil
		}
	}
	return nil, fmt.Errorf("exogate exited before listening: %s", last)
}

// scrape reads the admin listener's /metrics into a map by series.
func scrape(admin string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		v, _ := strconv.ParseFloat(line[i+1:], 64)
		out[line[:i]] = v
		if name, _, ok := strings.Cut(line[:i], "{"); ok && strings.HasSuffix(name, "_total") {
			out[name+"_sum"] += v
		}
	}
	return out
}
