package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/exogate/exogate/internal/fakeexotel"
	"github.com/exogate/exogate/internal/gateway"
)

var adminRE = regexp.MustCompile(`"admin_addr":"([^"]+)"`)

// adminURL waits for the binary to log its admin listener's address: the
// Exotel listener can answer /readyz a moment before that line is written.
func (p *process) adminURL(t *testing.T) string {
	t.Helper()
	var addr string
	waitFor(t, func() bool {
		if m := adminRE.FindStringSubmatch(p.logs.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	return "http://" + addr
}

// scrape fetches /metrics and parses it with Prometheus's own text parser.
func scrape(t *testing.T, admin string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels include
// all of want (0 if there is none).
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return 0
	}
	total := 0.0
	for _, m := range f.GetMetric() {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// The built binary's /metrics moves as traffic flows: requests by source and
// code, limiter admissions and rejections, Exotel's own 401 and 429, an open
// breaker, credentials injected and client auth removed.
func TestMetricsOnTheBinary(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	cfg := writeFile(t, "exogate.yaml", farm.config(`limits:
  max_wait: 0s
  buckets:
    sms: {limit: 3, period: 1h, burst: 1}
    voice_v1: {limit: 1000, period: 1s, burst: 100}
    voice_v2: {limit: 1000, period: 1s, burst: 100}
breaker: {consecutive_failures: 2, open_for: 1h}
`))
	p := startBinary(t, cfg)
	admin := p.adminURL(t)
	before := scrape(t, admin)
	if value(before, "exogate_build_info", nil) != 1 || before["go_goroutines"] == nil || before["process_resident_memory_bytes"] == nil {
		t.Error("build info or runtime collectors missing")
	}
	if value(before, "exogate_credentials_info", map[string]string{"account": "acme", "source": "env"}) != 1 {
		t.Error("credentials_info missing for acme")
	}
	if value(before, "exogate_limiter_backend", map[string]string{"backend": "memory"}) != 1 {
		t.Error("limiter backend gauge wrong")
	}

	get := func(path string, hdr map[string]string) int {
		resp, _ := send(t, "GET", p.base+path, "", hdr)
		return resp.StatusCode
	}
	// Three good calls, one carrying stale client credentials.
	get("/v1/Accounts/acme/Calls.json", map[string]string{"Authorization": basicOf("old", "creds")})
	get("/v1/Accounts/acme/Calls.json", nil)
	get("/v2/accounts/acme/calls", nil)
	// A limiter rejection: the sms bucket allows one now.
	send(t, "POST", p.base+"/v1/Accounts/acme/Sms/send.json", "To=1", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if code, _ := send(t, "POST", p.base+"/v1/Accounts/acme/Sms/send.json", "To=1", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); code.StatusCode != 429 {
		t.Fatalf("second sms: %d, want the limiter's 429", code.StatusCode)
	}
	// Exotel's own 401 (a wrong token for acme1m on the Mumbai host).
	farm.fakes["mumbai-api"].SetAccount(fakeexotel.Account{SID: "acme1m", Key: mumKey, Token: "other"})
	get("/v1/Accounts/acme1m/Calls.json", nil)
	// Two 5xx open acme's ccm breaker; the next is refused by the gateway.
	farm.fakes["singapore-ccm"].SetOverride(func(fakeexotel.Request) (int, string, bool) { return 503, "", true })
	get("/v3/accounts/acme/calls", nil)
	get("/v3/accounts/acme/calls", nil)
	if c := get("/v3/accounts/acme/calls", nil); c != 503 {
		t.Fatalf("breaker did not open: %d", c)
	}
	// An unknown account.
	get("/v1/Accounts/stranger/Calls.json", nil)

	after := scrape(t, admin)
	delta := func(name string, labels map[string]string) float64 {
		return value(after, name, labels) - value(before, name, labels)
	}
	checks := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"upstream 200s for voice_v1", "exogate_requests_total", map[string]string{"account": "acme", "bucket": "voice_v1", "code": "200", "source": "upstream"}, 2},
		{"upstream 200 for voice_v2", "exogate_requests_total", map[string]string{"account": "acme", "bucket": "voice_v2", "code": "200", "source": "upstream"}, 1},
		{"gateway 429", "exogate_requests_total", map[string]string{"account": "acme", "bucket": "sms", "code": "429", "source": "gateway"}, 1},
		{"gateway 503 circuit open", "exogate_requests_total", map[string]string{"account": "acme", "code": "503", "source": "gateway"}, 1},
		{"unknown account bounded", "exogate_requests_total", map[string]string{"account": "unknown", "code": "404"}, 1},
		{"limiter admitted sms", "exogate_limiter_admitted_total", map[string]string{"account": "acme", "bucket": "sms"}, 1},
		{"limiter rejected sms", "exogate_limiter_rejected_total", map[string]string{"account": "acme", "bucket": "sms"}, 1},
		{"limiter wait observed", "exogate_limiter_wait_seconds", map[string]string{"account": "acme", "bucket": "voice_v1"}, 2},
		{"exotel 401", "exogate_exotel_responses_total", map[string]string{"account": "acme1m", "code": "401"}, 1},
		{"breaker open", "exogate_breaker_state", map[string]string{"account": "acme", "host": "ccm"}, 2},
		{"breaker transition", "exogate_breaker_transitions_total", map[string]string{"account": "acme", "host": "ccm", "to": "open"}, 1},
		{"api breaker still closed", "exogate_breaker_state", map[string]string{"account": "acme", "host": "api"}, 0},
		{"credentials injected", "exogate_credentials_injected_total", map[string]string{"account": "acme"}, 6},
		{"client auth removed", "exogate_client_auth_removed_total", map[string]string{"account": "acme"}, 1},
		{"upstream durations", "exogate_upstream_duration_seconds", map[string]string{"account": "acme", "host": "api"}, 3},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			got := delta(c.metric, c.labels)
			if c.metric == "exogate_breaker_state" {
				got = value(after, c.metric, c.labels)
			}
			if got != c.want {
				t.Errorf("%s%v moved by %v, want %v", c.metric, c.labels, got, c.want)
			}
		})
	}
	if value(after, "exogate_credentials_age_seconds", map[string]string{"account": "acme"}) <= 0 {
		t.Error("credential age not reported")
	}
	for _, fam := range after {
		for _, mt := range fam.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "account" && l.GetValue() == "stranger" {
					t.Errorf("an unconfigured SID became a label value in %s", fam.GetName())
				}
			}
		}
	}

	// /status: the state an operator asks for, and never a secret.
	resp, err := http.Get(admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var st gateway.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("status: %v\n%s", err, body)
	}
	if !st.Ready || st.Limiter.Backend != "memory" || len(st.Accounts) != 2 {
		t.Errorf("status %+v", st)
	}
	// Go's transport is the only client; it does not count its idle
	// connections.
	if st.Upstream.Client != "net/http" || st.Upstream.IdleConns != nil || strings.Contains(string(body), "idle_conns") {
		t.Errorf("upstream status %+v", st.Upstream)
	}
	acme := st.Accounts[0]
	if acme.SID != "acme" || acme.Breakers["ccm"] != "open" || acme.Breakers["api"] != "closed" ||
		!acme.Credentials.Loaded || acme.Credentials.Source != "env" || acme.Buckets["sms"].Limit != 3 {
		t.Errorf("acme status %+v", acme)
	}
	for _, s := range secrets {
		if strings.Contains(string(body), s) || strings.Contains(string(body), basicOf(acmeKey, s)[6:]) {
			t.Errorf("/status contains a secret")
		}
	}
	// The container HEALTHCHECK: exogate health against the admin listener.
	var out strings.Builder
	if err := run(t.Context(), []string{"exogate", "health", "-url", admin + "/readyz"}, func(string) string { return "" }, nil, &out, io.Discard); err != nil || out.String() != "ready\n" {
		t.Errorf("health: %v %q", err, out.String())
	}
	if err := run(t.Context(), []string{"exogate", "health", "-url", "http://127.0.0.1:1/readyz"}, func(string) string { return "" }, nil, io.Discard, io.Discard); err == nil {
		t.Error("health succeeded with nothing listening")
	}
	// The admin endpoints are not on the Exotel listener.
	if c := get("/metrics", nil); c != 404 {
		t.Errorf("/metrics on the Exotel listener: %d", c)
	}
}

// Reload on the built binary: an account added and another removed without
// dropping the request in flight for the removed one; the breaker of an
// unchanged account stays open; an invalid file or a new listen address is
// refused and the running configuration keeps serving; SIGHUP reloads too.
func TestReloadOnTheBinary(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	for _, f := range farm.fakes {
		f.SetAccount(fakeexotel.Account{SID: "newco", Key: mumKey, Token: mumToken})
	}
	breaker := "breaker: {consecutive_failures: 1, open_for: 1h}\n"
	// This test reloads several times in a row: no interval between reloads.
	config := func(extra string) string {
		return strings.Replace(farm.config(extra), "admin: {listen: 127.0.0.1:0}", "admin: {listen: 127.0.0.1:0, min_reload_interval: 0s}", 1)
	}
	cfgFile := writeFile(t, "exogate.yaml", config(breaker))
	p := startBinary(t, cfgFile)
	admin := p.adminURL(t)
	reload := func() (int, string) {
		resp, err := http.Post(admin+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(path string) *http.Response {
		resp, _ := send(t, "GET", p.base+path, "", nil)
		return resp
	}

	// Open acme's ccm breaker.
	farm.fakes["singapore-ccm"].SetOverride(func(fakeexotel.Request) (int, string, bool) { return 500, "", true })
	get("/v2/accounts/acme/calls")
	if r := get("/v2/accounts/acme/calls"); r.Header.Get("X-Exogate-Error") != "circuit_open" {
		t.Fatalf("breaker not open: %d %q", r.StatusCode, r.Header.Get("X-Exogate-Error"))
	}
	// A request for acme1m in flight across the reload.
	release := make(chan struct{})
	farm.fakes["mumbai-api"].SetOverride(func(fakeexotel.Request) (int, string, bool) {
		<-release
		return 0, "", false
	})
	inflight := make(chan int, 1)
	go func() {
		resp, err := http.Get(p.base + "/v1/Accounts/acme1m/Calls.json")
		if err != nil {
			inflight <- -1
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	waitFor(t, func() bool { return farm.fakes["mumbai-api"].Count() == 1 })

	// New file: acme stays, acme1m goes, newco comes.
	next := strings.Replace(config(breaker), `  - sid: acme1m
    region: mumbai`, `  - sid: newco
    region: mumbai`, 1)
	if err := os.WriteFile(cfgFile, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := reload(); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	close(release)
	if code := <-inflight; code != 200 {
		t.Errorf("the in-flight request for the removed account ended %d, want 200", code)
	}
	if r := get("/v1/Accounts/acme1m/Calls.json"); r.StatusCode != 404 || r.Header.Get("X-Exogate-Error") != "unknown_account" {
		t.Errorf("removed account: %d %q", r.StatusCode, r.Header.Get("X-Exogate-Error"))
	}
	farm.fakes["mumbai-api"].SetOverride(nil)
	if r := get("/v1/Accounts/newco/Calls.json"); r.StatusCode != 200 {
		t.Errorf("added account: %d", r.StatusCode)
	}
	if r := get("/v2/accounts/acme/calls"); r.Header.Get("X-Exogate-Error") != "circuit_open" {
		t.Errorf("acme's open breaker did not carry over: %d %q", r.StatusCode, r.Header.Get("X-Exogate-Error"))
	}

	// Invalid files are refused, naming the field; the running config serves on.
	for name, bad := range map[string]string{
		"unknown key":    next + "limitz: {}\n",
		"bad limit":      next + "limits: {buckets: {sms: {limit: 5, period: 1s, burst: 5}}}\n",
		"listen changed": strings.Replace(next, "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1),
	} {
		if err := os.WriteFile(cfgFile, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		code, body := reload()
		want := map[string]string{"unknown key": `unknown key "limitz"`, "bad limit": "limits.buckets.sms", "listen changed": "needs a restart"}[name]
		if code != 400 || !strings.Contains(body, want) {
			t.Errorf("%s: reload answered %d %q, want 400 naming %q", name, code, body, want)
		}
		if r := get("/v1/Accounts/newco/Calls.json"); r.StatusCode != 200 {
			t.Errorf("%s: the running configuration stopped serving: %d", name, r.StatusCode)
		}
	}
	fams := scrape(t, admin)
	if value(fams, "exogate_config_reloads_total", map[string]string{"result": "failure"}) != 3 ||
		value(fams, "exogate_config_reloads_total", map[string]string{"result": "success"}) != 1 {
		t.Error("reload counters wrong")
	}

	// SIGHUP: back to the first file.
	if err := os.WriteFile(cfgFile, []byte(config(breaker)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Count(p.logs.String(), "configuration reloaded") == 2 })
	if r := get("/v1/Accounts/acme1m/Calls.json"); r.StatusCode != 200 {
		t.Errorf("after SIGHUP acme1m: %d", r.StatusCode)
	}
}
