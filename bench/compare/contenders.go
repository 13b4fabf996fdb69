package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// contender is one proxy (or the direct baseline) that the load goes through.
type contender struct {
	name   string
	base   string // http://127.0.0.1:PORT
	auth   string // Authorization the client sends (stale for proxies, the real one direct)
	config string // the configuration used, for the report
	proxy  bool   // false for the direct baseline (no process of its own)
	// reference marks the plain Go ReverseProxy: a yardstick, not a peer.
	reference bool

	newCmd   func() *exec.Cmd
	readyURL string         // polled after exec: /readyz for exogate, the proxied path for peers
	stopSig  syscall.Signal // graceful/fast stop
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has exited
	errLog   string        // where its own errors go, quoted when it fails to start
}

const path = "/v1/Accounts/acme/Calls/abc.json"

// staleAuth is what a client still sends to a proxy: it must be replaced.
const staleAuth = "Basic c3RhbGU6c3RhbGU=" // stale:stale

func (c *contender) url() string { return c.base + path }

// start execs the contender and waits until readyURL answers 200. It returns
// the time from just before exec to that first 200, and to the first proxied
// 200 (the same request for the peers; the one after /readyz for exogate).
func (c *contender) start() (ready, first time.Duration, err error) {
	cmd := c.newCmd()
	dieWithParent(cmd)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", c.name, err)
	}
	c.cmd = cmd
	exited := make(chan struct{})
	c.exited = exited
	go func() {
		_ = cmd.Wait()
		if f, ok := cmd.Stderr.(*os.File); ok { // HAProxy's warnings file
			f.Close()
		}
		close(exited)
	}()
	cl := pollClient()
	for time.Since(t0) < 10*time.Second {
		select {
		case <-exited:
			c.cmd = nil
			return 0, 0, fmt.Errorf("%s exited during start-up (%s)%s", c.name, cmd.ProcessState, c.tail())
		default:
		}
		if get(cl, c.readyURL) == 200 {
			ready = time.Since(t0)
			if c.readyURL == c.url() {
				return ready, ready, nil
			}
			if code := get(cl, c.url()); code != 200 {
				return 0, 0, fmt.Errorf("%s: first request after ready answered %d", c.name, code)
			}
			return ready, time.Since(t0), nil
		}
		time.Sleep(200 * time.Microsecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	c.cmd = nil
	return 0, 0, fmt.Errorf("%s not ready within 10s%s", c.name, c.tail())
}

// tail is the end of the contender's error log, if it has one.
func (c *contender) tail() string {
	if c.errLog == "" {
		return ""
	}
	b, err := os.ReadFile(c.errLog)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return ":\n" + string(b)
}

// stop ends the contender and waits for it (and its children) to exit.
func (c *contender) stop() {
	if c.cmd == nil {
		return
	}
	exited := c.exited
	_ = c.cmd.Process.Signal(c.stopSig)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-exited
	}
	c.cmd = nil
}

// pids is the contender's process and its children (nginx's workers).
func (c *contender) pids() []int {
	if c.cmd == nil {
		return nil
	}
	return withChildren(c.cmd.Process.Pid)
}

func pollClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
}

func get(cl *http.Client, url string) int {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", staleAuth)
	resp, err := cl.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var buf [512]byte
	for {
		if _, err := resp.Body.Read(buf[:]); err != nil {
			break
		}
	}
	return resp.StatusCode
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func writeFile(dir, name, text string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(text), 0o644)
}

// newExogate is the gateway as a sidecar would run it: env credentials,
// in-memory limiter with limits far above the load, breaker on (default),
// info JSON access log on stderr (to /dev/null), admin listener on.
func newExogate(dir, name, bin, up, key, token string, extraEnv []string) (*contender, error) {
	cfg, port, err := exogateConfig(fmt.Sprintf(`  allow_insecure_http: true
  regions: {singapore: {api: "http://%s", ccm: "http://%s"}}`, up, up))
	if err != nil {
		return nil, err
	}
	file, err := writeFile(dir, strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(name)+".yaml", cfg)
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	return &contender{
		name: name, base: base, auth: staleAuth, config: cfg, proxy: true, reference: name != "exogate",
		readyURL: base + "/readyz", stopSig: syscall.SIGINT,
		newCmd: func() *exec.Cmd {
			cmd := exec.Command(bin, "-config", file)
			cmd.Env = append([]string{"K=" + key, "T=" + token}, extraEnv...)
			return cmd // stdout, stderr: /dev/null (the access log's production default is stderr)
		},
	}, nil
}

// newNginx is nginx with the same job, tuned for this 2-core machine.
//
// accessLog is where nginx writes one JSON line per request ("" = off).
func newNginx(dir, up, auth, accessLog string, reuseport bool) (*contender, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ndir := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(ndir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	listenOpts := "backlog=4096"
	if reuseport {
		listenOpts = "reuseport " + listenOpts
	}
	logLine := "access_log off;"
	if accessLog != "" {
		// One JSON line per request, unbuffered: to /dev/null, the same work
		// as exogate's access log to a discarded stderr.
		logLine = "access_log " + accessLog + " exo;"
	}
	cfg := fmt.Sprintf(`worker_processes 2;
worker_rlimit_nofile 16384;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    log_format exo escape=json '{"level":"info","time":"$time_iso8601","request_id":"$request_id","method":"$request_method","path":"$uri","status":$status,"duration_ms":$request_time,"upstream_ms":"$upstream_response_time","message":"request"}';
    %[2]s
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    upstream exotel {
        server %[3]s;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 120s;
    }
    server {
        listen 127.0.0.1:%[4]d %[6]s;
        location / {
            proxy_pass http://exotel;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host %[3]s;
            proxy_set_header Authorization "%[5]s";
            proxy_set_header Proxy-Authorization "";
        }
    }
}
`, ndir, logLine, up, port, auth, listenOpts)
	file, err := writeFile(ndir, "nginx.conf", cfg)
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	return &contender{
		name: "nginx", base: base, auth: staleAuth, config: cfg, proxy: true, errLog: filepath.Join(ndir, "error.log"),
		readyURL: base + path, stopSig: syscall.SIGTERM,
		newCmd: func() *exec.Cmd {
			return exec.Command("nginx", "-p", ndir, "-c", file, "-e", filepath.Join(ndir, "error.log"), "-g", "daemon off;")
		},
	}, nil
}

// newHAProxy is HAProxy with the same job, two threads. Its built-in HTTP
// client (Lua, ACME; unused here) loads the system CA bundle at start-up,
// about 40 ms on this machine: httpclient.ssl.verify none skips that.
func newHAProxy(dir, up, auth string, accessLog bool) (*contender, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logGlobal, logDefaults := "", ""
	if accessLog {
		// One JSON line per request on stdout, which goes to /dev/null.
		logGlobal = "    log stdout format raw local0\n"
		logDefaults = `    log global
    log-format '{"level":"info","time":"%t","request_id":"%rt","method":"%HM","path":"%HP","status":%ST,"duration_ms":%Ta,"upstream_ms":%Tr,"message":"request"}'
`
	}
	cfg := fmt.Sprintf(`global
    nbthread 2
    maxconn 4096
    httpclient.ssl.verify none
%sdefaults
    mode http
%s    timeout connect 5s
    timeout client 120s
    timeout server 30s
    timeout http-keep-alive 120s
    http-reuse always
frontend fe
    bind 127.0.0.1:%d
    http-request del-header Proxy-Authorization
    http-request set-header Authorization "%s"
    http-request set-header Host %s
    default_backend exotel
backend exotel
    server up %s
`, logGlobal, logDefaults, port, auth, up, up)
	file, err := writeFile(dir, "haproxy.cfg", cfg)
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	errLog := filepath.Join(dir, "haproxy.stderr")
	return &contender{
		name: "HAProxy", base: base, auth: staleAuth, config: cfg, proxy: true, errLog: errLog,
		readyURL: base + path, stopSig: syscall.SIGTERM,
		newCmd: func() *exec.Cmd {
			cmd := exec.Command("haproxy", "-f", file, "-db")
			if f, err := os.OpenFile(errLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
				cmd.Stderr = f // warnings only; the access log is on stdout (/dev/null)
			}
			return cmd
		},
	}, nil
}

// withChildren is pid and every process whose parent is pid.
func withChildren(pid int) []int {
	out := []int{pid}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// rssKiB is the sum of VmRSS over pids, in KiB.
func rssKiB(pids []int) int64 {
	var sum int64
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				f := strings.Fields(line)
				if len(f) >= 2 {
					n, _ := strconv.ParseInt(f[1], 10, 64)
					sum += n
				}
			}
		}
	}
	return sum
}

// cpuTime is the user+system CPU time consumed so far by pids (USER_HZ is
// 100 on Linux, so the resolution is 10 ms).
func cpuTime(pids []int) time.Duration {
	var ticks int64
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime is field 14, stime 15
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + st
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// exogateConfig is exogate's file as the comparisons run it, on free ports:
// env credentials, the in-memory limiter with limits far above the load,
// the breaker on (default), an info JSON access log, the admin listener on;
// upstream is the body of the upstream: block.
func exogateConfig(upstream string) (cfg string, port int, err error) {
	port, err = freePort()
	if err != nil {
		return "", 0, err
	}
	admin, err := freePort()
	if err != nil {
		return "", 0, err
	}
	rule := "{limit: 100000000, period: 1s, burst: 1000000}"
	cfg = fmt.Sprintf(`listen: 127.0.0.1:%d
admin: {listen: 127.0.0.1:%d}
log: {level: info, format: json}
upstream:
%s
accounts:
  - sid: acme
    region: singapore
    credentials: {source: env, api_key_env: K, api_token_env: T}
limits:
  backend: memory
  buckets: {voice_v1: %s, voice_v2: %s, sms: %s, whatsapp: %s, other: %s}
`, port, admin, upstream, rule, rule, rule, rule, rule)
	return cfg, port, nil
}
