package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/exogate/exogate/internal/fakeexotel"
	"github.com/exogate/exogate/internal/redistest"
	"github.com/exogate/exogate/internal/testutil"
	"github.com/exogate/exogate/webhooks"
)

// The callback path's secrets, in the gateways' environment. TestMain
// fails the run if any of them, or a route's URL token, is in a log.
const (
	hooksURLSecret     = "e62fae5da284836d56807eeca1d6a727b8532b78"
	hooksSigningKey    = "zqrrB2ZommgjaGdAzsisaV7wg8zUPOBk"
	hooksSigningSecret = "whsec_" + hooksSigningKey
	hooksPrevURLSecret = "9b1c7e33f0a84d2c5e6f7a8b9c0d1e2f3a4b5c6d"
)

// hookRoutes are the route names the suite uses: their URL tokens are
// secrets too.
var hookRoutes = []string{"calls", "sms", "other"}

// hooksSecrets are the callback path's secrets and every route's token.
func hooksSecrets() []string {
	out := []string{hooksURLSecret, hooksSigningKey, hooksPrevURLSecret}
	for _, r := range hookRoutes {
		out = append(out, hookToken(r), webhooks.Token([]byte(hooksPrevURLSecret), r))
	}
	return out
}

func hookToken(route string) string { return webhooks.Token([]byte(hooksURLSecret), route) }

// delivery is one request a target received, and what it answered.
type delivery struct {
	header http.Header
	body   []byte
	code   int
}

func (d delivery) field(k string) string {
	v, _ := url.ParseQuery(string(d.body))
	return v.Get(k)
}

// hookTarget is an internal service on 127.0.0.1 that records every
// delivery. It answers what answer returns (200 when nil).
type hookTarget struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []delivery
	answer atomic.Pointer[func(delivery) int]
}

func newHookTarget(t *testing.T) *hookTarget {
	t.Helper()
	tg := &hookTarget{}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d := delivery{header: r.Header.Clone(), body: body, code: http.StatusOK}
		if f := tg.answer.Load(); f != nil {
			d.code = (*f)(d)
		}
		tg.mu.Lock()
		tg.got = append(tg.got, d)
		tg.mu.Unlock()
		w.WriteHeader(d.code)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

// answerWith makes the target answer code to every delivery.
func (tg *hookTarget) answerWith(code int) {
	f := func(delivery) int { return code }
	tg.answer.Store(&f)
}

// all returns every request received so far.
func (tg *hookTarget) all() []delivery {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]delivery(nil), tg.got...)
}

// delivered returns the deliveries answered 2xx, by CallSid.
func (tg *hookTarget) delivered() map[string][]delivery {
	out := map[string][]delivery{}
	for _, d := range tg.all() {
		if d.code/100 == 2 {
			out[d.field("CallSid")] = append(out[d.field("CallSid")], d)
		}
	}
	return out
}

// hooksGateway is a running exogate binary with a callback listener.
type hooksGateway struct {
	cmd                *exec.Cmd
	logs               *testutil.SyncBuffer
	base, admin, hooks string
	exited             chan struct{}
}

var hooksAddrRE = regexp.MustCompile(`"webhooks_addr":"([^"]+)"`)

// hooksEnv is the farm's credentials and the callback path's secrets.
func hooksEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "EXOGATE_WEBHOOK_URL_SECRET=" + hooksURLSecret, "HOOKS_SIGNING_SECRET=" + hooksSigningSecret,
		"EXOGATE_WEBHOOK_URL_SECRET_PREVIOUS=" + hooksPrevURLSecret}
	for k, v := range farmEnv() {
		env = append(env, k+"="+v)
	}
	return env
}

// startHooks runs the built binary and waits until its three listeners
// are up.
func startHooks(t *testing.T, cfgFile string) *hooksGateway {
	t.Helper()
	g := &hooksGateway{logs: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	g.cmd = exec.Command(exogateBinary(t), "-config", cfgFile)
	g.cmd.Env = hooksEnv()
	// One writer for both streams: os/exec then uses one pipe, so lines
	// arrive in the order they were written.
	out := io.MultiWriter(g.logs, allLogs)
	g.cmd.Stdout, g.cmd.Stderr = out, out
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	gatewaysStarted.Add(1)
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		_ = g.cmd.Process.Signal(os.Interrupt)
		select {
		case <-g.exited:
		case <-time.After(30 * time.Second):
			_ = g.cmd.Process.Kill()
		}
	})
	testutil.Eventually(t, 60*time.Second, "the gateway's listeners did not come up", func() bool {
		select {
		case <-g.exited:
			t.Fatalf("exogate exited:\n%s", g.logs.String())
		default:
		}
		logs := g.logs.String()
		for _, m := range []struct {
			re  *regexp.Regexp
			dst *string
		}{{addrRE, &g.base}, {adminRE, &g.admin}, {hooksAddrRE, &g.hooks}} {
			if s := m.re.FindStringSubmatch(logs); s != nil {
				*m.dst = "http://" + s[1]
			}
		}
		return g.base != "" && g.admin != "" && g.hooks != ""
	})
	waitStatus(t, g.base+"/readyz", 200)
	return g
}

// kill ends the process with SIGKILL: no shutdown, no last write.
func (g *hooksGateway) kill(t *testing.T) {
	t.Helper()
	if err := g.cmd.Process.Kill(); err != nil {
		t.Errorf("SIGKILL: %v", err)
	}
	<-g.exited
}

// hookURL is the listener's URL for route, with its token.
func (g *hooksGateway) hookURL(route string) string {
	return g.hooks + "/hooks/" + route + "/" + hookToken(route)
}

// postHook sends a callback the way Exotel does and returns the status (-1
// when there was no answer).
func postHook(target, ctype, body string, hdr map[string]string) int {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return -1
	}
	req.Header.Set("Content-Type", ctype)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

const formType = "application/x-www-form-urlencoded"

// callback is a terminal call callback as Exotel sends it.
func callback(sid, status string) string {
	return url.Values{
		"CallSid": {sid}, "Status": {status}, "EventType": {"terminal"},
		"From": {"09999999999"}, "To": {"08888888888"}, "DateUpdated": {"2026-12-05 10:00:00"},
	}.Encode()
}

// routeStats is one route's line in the admin's GET /webhooks.
type routeStats struct {
	Pending, Delivered, Dead int
}

func (g *hooksGateway) stats(t *testing.T) map[string]routeStats {
	t.Helper()
	resp, err := http.Get(g.admin + "/webhooks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Routes map[string]routeStats `json:"routes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /webhooks: %d %v", resp.StatusCode, err)
	}
	return doc.Routes
}

// hookRoute is a call route of account acme.
func hookRoute(name, target, extra string) string {
	return fmt.Sprintf(`    - name: %s
      account: acme
      kind: call
      target: %s
      signing_secret_env: HOOKS_SIGNING_SECRET
      retry: {max_age: 1h, max_interval: 500ms}
%s`, name, target, extra)
}

// hooksConfig is the farm's configuration with a callback listener on
// 127.0.0.1:0, its store in dir, settings (more webhooks keys, indented)
// and routes. The breaker reopens quickly, so that a target that comes
// back is tried again soon.
func hooksConfig(farm *exotelFarm, dir, settings, top string, routes ...string) string {
	return farm.config(fmt.Sprintf(`breaker: {open_for: 200ms}
%swebhooks:
  listen: 127.0.0.1:0
  public_url: https://hooks.example.com/exotel
  allow_insecure_http: true
  store: {path: %s}
%s  routes:
%s`, top, filepath.Join(dir, "webhooks.db"), settings, strings.Join(routes, "")))
}

// runCLI runs the binary with args and returns its standard output.
func runCLI(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := runBinary(t, hooksEnv(), args...)
	if err != nil {
		t.Fatalf("exogate %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout
}

// runBinary runs the binary to its end with env and args; its standard
// error also goes to the suite's logs.
func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(exogateBinary(t), args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, io.MultiWriter(&errb, allLogs)
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// eventually polls cond with a deadline generous enough for a loaded
// machine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 90*time.Second, what, cond)
}

// The guarantee that matters: a callback acknowledged with 200 is on disk.
// Each round sends callbacks while the target is down, kills exogate with
// SIGKILL (no shutdown, nothing flushed), restarts it on the same store and
// brings the target back: every acknowledged callback is delivered, under
// one webhook-id. Odd rounds kill right after the last acknowledgement;
// even rounds kill while callbacks are still arriving, and only those
// acknowledged are owed.
func TestWebhooksSurviveKill9(t *testing.T) {
	t.Parallel()
	const rounds, perRound = 5, 24
	farm := newFarm(t)
	tg := newHookTarget(t)
	cfg := writeFile(t, "exogate.yaml", hooksConfig(farm, t.TempDir(), "", "", hookRoute("calls", tg.srv.URL, "")))
	g := startHooks(t, cfg)
	owed := map[string]string{} // CallSid → body
	for round := range rounds {
		tg.answerWith(http.StatusServiceUnavailable)
		acked := sendUntilKilled(t, g, round, perRound, round%2 == 1)
		if len(acked) == 0 {
			t.Fatalf("round %d: no callback acknowledged", round)
		}
		for sid, body := range acked {
			owed[sid] = body
		}
		g = startHooks(t, cfg)
		tg.answerWith(http.StatusOK)
		eventually(t, fmt.Sprintf("round %d: acknowledged callbacks not all delivered", round), func() bool {
			got := tg.delivered()
			for sid := range owed {
				if len(got[sid]) == 0 {
					return false
				}
			}
			return true
		})
		t.Logf("round %d: %d acknowledged before SIGKILL, all delivered after the restart", round, len(acked))
	}
	ids := map[string]string{} // webhook-id → CallSid
	for sid, ds := range tg.delivered() {
		body, ok := owed[sid]
		if !ok {
			continue // sent but not acknowledged: Exotel would send it again
		}
		for _, d := range ds {
			if string(d.body) != body || d.header.Get("Content-Type") != formType {
				t.Errorf("%s delivered as %q %q, want the original body", sid, d.header.Get("Content-Type"), d.body)
			}
		}
		for _, d := range tg.all() {
			if d.field("CallSid") == sid && d.header.Get("webhook-id") != ds[0].header.Get("webhook-id") {
				t.Errorf("%s sent under webhook-ids %q and %q", sid, d.header.Get("webhook-id"), ds[0].header.Get("webhook-id"))
			}
		}
		id := ds[0].header.Get("webhook-id")
		if other, dup := ids[id]; dup {
			t.Errorf("webhook-id %s used for %s and %s", id, sid, other)
		}
		ids[id] = sid
	}
	st := g.stats(t)["calls"]
	if st.Dead != 0 {
		t.Errorf("%d dead after the rounds", st.Dead)
	}
}

// sendUntilKilled sends n callbacks from four senders at once and kills
// the gateway with SIGKILL after the last acknowledgement, or, with
// midway, after half of them, while the rest are still being sent. It
// returns the acknowledged callbacks, by CallSid.
func sendUntilKilled(t *testing.T, g *hooksGateway, round, n int, midway bool) map[string]string {
	t.Helper()
	killAt := n
	if midway {
		killAt = n / 2
	}
	var mu sync.Mutex
	acked := map[string]string{}
	killed := make(chan struct{})
	var once sync.Once
	kill := func() { once.Do(func() { g.kill(t); close(killed) }) }
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				sid := fmt.Sprintf("kill%d-%02d", round, i)
				body := callback(sid, "completed")
				if postHook(g.hookURL("calls"), formType, body, nil) != http.StatusOK {
					continue
				}
				mu.Lock()
				acked[sid] = body
				enough := len(acked) >= killAt
				mu.Unlock()
				if enough {
					kill()
				}
			}
		}()
	}
	wg.Wait()
	kill()
	<-killed
	mu.Lock()
	defer mu.Unlock()
	if !midway && len(acked) != n {
		t.Fatalf("round %d: %d of %d callbacks acknowledged before the kill", round, len(acked), n)
	}
	return acked
}

// Every refusal on the binary, in the order the listener checks: each
// answered with its status, counted with its reason, nothing stored and
// nothing delivered; then the same callback done right is accepted and
// delivered, so that "nothing" is not a target that was never reachable.
func TestWebhooksRefusals(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	tg := newHookTarget(t)
	cfg := writeFile(t, "exogate.yaml", hooksConfig(farm, t.TempDir(), `  source_cidrs: [10.0.0.0/8]
  trusted_proxies: [127.0.0.1/32]
  max_body: 1024
`, "", hookRoute("calls", tg.srv.URL, ""), hookRoute("other", tg.srv.URL, "")))
	g := startHooks(t, cfg)
	// The URL an operator gives Exotel, from the command line.
	printed := strings.TrimSpace(runCLI(t, "webhooks", "url", "-config", cfg, "calls"))
	if want := "https://hooks.example.com/exotel/hooks/calls/" + hookToken("calls"); printed != want {
		t.Fatalf("exogate webhooks url printed %q, want %q", printed, want)
	}
	good := g.hooks + strings.TrimPrefix(printed, "https://hooks.example.com/exotel")
	exotel := map[string]string{"X-Forwarded-For": "10.1.2.3"}
	valid := callback("refused-1", "completed")
	tests := []struct {
		name, method, target, ctype, body string
		hdr                               map[string]string
		code                              int
		reason                            string
	}{
		{"GET", "GET", good, formType, "", exotel, 405, "method"},
		{"PUT", "PUT", good, formType, valid, exotel, 405, "method"},
		{"source outside the ranges", "POST", good, formType, valid, map[string]string{"X-Forwarded-For": "192.0.2.7"}, 403, "source"},
		{"the trusted proxy itself", "POST", good, formType, valid, nil, 403, "source"},
		{"forwarded-for forged by the client", "POST", good, formType, valid, map[string]string{"X-Forwarded-For": "10.1.2.3, 192.0.2.7"}, 403, "source"},
		{"bad token", "POST", g.hooks + "/hooks/calls/" + strings.Repeat("A", 43), formType, valid, exotel, 404, "token"},
		{"another route's token", "POST", g.hooks + "/hooks/calls/" + hookToken("other"), formType, valid, exotel, 404, "token"},
		{"no token", "POST", g.hooks + "/hooks/calls", formType, valid, exotel, 404, "token"},
		{"unknown route", "POST", g.hooks + "/hooks/nosuch/" + hookToken("nosuch"), formType, valid, exotel, 404, "token"},
		{"not under /hooks", "POST", g.hooks + "/", formType, valid, exotel, 404, "token"},
		{"over max_body", "POST", good, formType, valid + "&Padding=" + strings.Repeat("x", 1024), exotel, 413, "size"},
		{"no CallSid", "POST", good, formType, "Status=completed&EventType=terminal", exotel, 400, "payload"},
		{"unknown Status", "POST", good, formType, callback("refused-2", "exploded"), exotel, 400, "payload"},
		{"an SMS report on a call route", "POST", good, formType, "SmsSid=s1&Status=sent", exotel, 400, "payload"},
		{"not a form", "POST", good, "text/plain", valid, exotel, 400, "payload"},
		{"broken JSON", "POST", good, "application/json", `{"CallSid":"refused-3",`, exotel, 400, "payload"},
	}
	want := map[string]float64{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.ctype)
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assertNoSecret(t, resp, b)
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
		})
		want[tc.reason]++
	}
	fams := scrape(t, g.admin)
	for reason, n := range want {
		if got := value(fams, "exogate_webhooks_received_total", map[string]string{"outcome": reason}); got != n {
			t.Errorf("received_total{outcome=%q} = %v, want %v", reason, got, n)
		}
	}
	if n := value(fams, "exogate_webhooks_received_total", map[string]string{"outcome": "accepted"}); n != 0 {
		t.Errorf("%v refused callbacks counted as accepted", n)
	}
	for route, st := range g.stats(t) {
		if st != (routeStats{}) {
			t.Errorf("route %s after refusals only: %+v, want nothing stored", route, st)
		}
	}
	if code := postHook(good, formType, valid, map[string]string{"X-Forwarded-For": "192.0.2.7, 10.1.2.3"}); code != 200 {
		t.Fatalf("the valid callback through a trusted proxy: %d", code)
	}
	eventually(t, "the valid callback was not delivered", func() bool { return len(tg.all()) > 0 })
	if got := tg.all(); len(got) != 1 || got[0].field("CallSid") != "refused-1" {
		t.Errorf("the target received %d requests, want only the valid callback", len(got))
	}
	// The gateway logs a refusal before answering it, but the log reaches
	// this process through a pipe some time later.
	refusals := func() int { return strings.Count(g.logs.String(), `"webhooks: callback refused"`) }
	eventually(t, "not every refusal was logged", func() bool { return refusals() >= len(tests) })
	if n := refusals(); n != len(tests) {
		t.Errorf("%d refusals logged, want %d", n, len(tests))
	}
}

// The same callback twice (as Exotel retries one it thinks was lost) is
// acknowledged twice and delivered once; the same again after delivery
// too. A repeat with a different body is a variant, not a new delivery.
func TestWebhooksDuplicateDeliveredOnce(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	tg := newHookTarget(t)
	cfg := writeFile(t, "exogate.yaml", hooksConfig(farm, t.TempDir(), "", "", hookRoute("calls", tg.srv.URL, "")))
	g := startHooks(t, cfg)
	body := callback("dup-1", "completed")
	for i := range 2 {
		if code := postHook(g.hookURL("calls"), formType, body, nil); code != 200 {
			t.Fatalf("send %d: %d", i, code)
		}
	}
	eventually(t, "not delivered", func() bool { return len(tg.delivered()["dup-1"]) > 0 })
	if code := postHook(g.hookURL("calls"), formType, body, nil); code != 200 {
		t.Fatalf("send after delivery: %d", code)
	}
	if code := postHook(g.hookURL("calls"), formType, body+"&RecordingUrl=x", nil); code != 200 {
		t.Fatalf("variant: %d", code)
	}
	// A later callback is delivered after the repeats were answered: the
	// repeats were never queued (the store counts one message).
	if code := postHook(g.hookURL("calls"), formType, callback("dup-2", "completed"), nil); code != 200 {
		t.Fatal(code)
	}
	eventually(t, "the later callback not delivered", func() bool { return len(tg.delivered()["dup-2"]) > 0 })
	if n := len(tg.all()); n != 2 {
		t.Errorf("the target received %d requests, want 2 (dup-1 once, dup-2 once)", n)
	}
	// The store records a delivery a moment after the target answered.
	eventually(t, "the store does not show 2 delivered and nothing else", func() bool {
		return g.stats(t)["calls"] == routeStats{Delivered: 2}
	})
	fams := scrape(t, g.admin)
	for outcome, n := range map[string]float64{"accepted": 2, "duplicate": 2, "variant": 1} {
		if got := value(fams, "exogate_webhooks_received_total", map[string]string{"outcome": outcome}); got != n {
			t.Errorf("received_total{outcome=%q} = %v, want %v", outcome, got, n)
		}
	}
}

// A target that fails for a while (500s, enough to open the breaker) and
// recovers gets every callback: body and content type as Exotel sent them,
// signed per Standard Webhooks with the route's secret (checked with the
// Standard Webhooks library), one webhook-id per callback across retries.
func TestWebhooksTargetRecovers(t *testing.T) {
	t.Parallel()
	const n, failures = 6, 15
	farm := newFarm(t)
	tg := newHookTarget(t)
	var failed atomic.Int32
	answer := func(delivery) int {
		if failed.Add(1) <= failures {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	tg.answer.Store(&answer)
	cfg := writeFile(t, "exogate.yaml", hooksConfig(farm, t.TempDir(), "", "", hookRoute("calls", tg.srv.URL, "      concurrency: 2\n")))
	g := startHooks(t, cfg)
	sent := map[string][]byte{}
	for i := range n {
		sid := fmt.Sprintf("recover-%d", i)
		ctype, body := formType, []byte(callback(sid, "completed"))
		if i%2 == 1 { // Exotel also sends JSON
			ctype, body = "application/json", []byte(fmt.Sprintf(`{"CallSid":%q,"Status":"busy","EventType":"terminal"}`, sid))
		}
		if code := postHook(g.hookURL("calls"), ctype, string(body), nil); code != 200 {
			t.Fatalf("%s: %d", sid, code)
		}
		sent[sid] = body
	}
	verifier, err := standardwebhooks.NewWebhook(hooksSigningSecret)
	if err != nil {
		t.Fatal(err)
	}
	sidOf := func(d delivery) string {
		var j struct{ CallSid string }
		if json.Unmarshal(d.body, &j) == nil {
			return j.CallSid
		}
		return d.field("CallSid")
	}
	eventually(t, "not every callback delivered after the target recovered", func() bool {
		done := map[string]bool{}
		for _, d := range tg.all() {
			if d.code == 200 {
				done[sidOf(d)] = true
			}
		}
		return len(done) == n
	})
	ids := map[string]string{}
	for _, d := range tg.all() {
		sid := sidOf(d)
		if !bytes.Equal(d.body, sent[sid]) {
			t.Errorf("%s: body %q, want %q", sid, d.body, sent[sid])
		}
		if err := verifier.Verify(d.body, d.header); err != nil {
			t.Errorf("%s: signature: %v", sid, err)
		}
		if h := d.header; h.Get("X-Exogate-Route") != "calls" || h.Get("X-Exogate-Account") != "acme" || h.Get("X-Exogate-Source") != "exotel" {
			t.Errorf("%s: headers %v", sid, h)
		}
		id := d.header.Get("webhook-id")
		if prev, ok := ids[sid]; ok && prev != id {
			t.Errorf("%s: webhook-id %q then %q", sid, prev, id)
		}
		ids[sid] = id
	}
	if failed.Load() <= failures {
		t.Errorf("the target answered only %d times, want its %d failures and then the deliveries", failed.Load(), failures)
	}
	other, _ := standardwebhooks.NewWebhook("whsec_" + "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==")
	if d := tg.all()[0]; other.Verify(d.body, d.header) == nil {
		t.Error("a signature verifies with another secret")
	}
	eventually(t, "the store does not show every callback delivered", func() bool {
		return g.stats(t)["calls"] == routeStats{Delivered: n}
	})
}

// exotelCalls makes the fake Exotel answer GET .../Calls/{sid}.json from
// status (sid → status; a missing sid is 404, as Exotel answers an unknown
// call) and Calls/connect with the Sid placed.
func exotelCalls(farm *exotelFarm, placed string, status map[string]string) {
	re := regexp.MustCompile(`^/v1/Accounts/acme/Calls/([^/]+)\.json$`)
	farm.fakes["singapore-api"].SetOverride(func(r fakeexotel.Request) (int, string, bool) {
		if strings.HasSuffix(r.RequestURI, "/Calls/connect.json") {
			return 200, fmt.Sprintf(`{"Call":{"Sid":%q,"Status":"queued"}}`, placed), true
		}
		m := re.FindStringSubmatch(r.RequestURI)
		if r.Method != http.MethodGet || m == nil {
			return 0, "", false
		}
		st, ok := status[m[1]]
		if !ok {
			return http.StatusNotFound, "", true
		}
		return 200, fmt.Sprintf(`{"Call":{"Sid":%q,"Status":%q,"Duration":"42","DateUpdated":"2026-12-05 10:00:00"}}`, m[1], st), true
	})
}

// With verify: exotel, a callback whose CallSid Exotel does not know, or
// whose final status Exotel contradicts, is dropped as forged (dead, never
// delivered); a real one is delivered. Exotel is asked with the account's
// credentials.
func TestWebhooksVerifyDropsForged(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	exotelCalls(farm, "", map[string]string{"real-1": "completed", "contra-1": "failed"})
	tg := newHookTarget(t)
	cfg := writeFile(t, "exogate.yaml", hooksConfig(farm, t.TempDir(), "", "", hookRoute("calls", tg.srv.URL, "      verify: exotel\n")))
	g := startHooks(t, cfg)
	for _, sid := range []string{"forged-1", "real-1", "contra-1"} {
		if code := postHook(g.hookURL("calls"), formType, callback(sid, "completed"), nil); code != 200 {
			t.Fatalf("%s: %d", sid, code)
		}
	}
	eventually(t, "not every callback settled", func() bool {
		return g.stats(t)["calls"] == routeStats{Delivered: 1, Dead: 2}
	})
	got := tg.all()
	if len(got) != 1 || got[0].field("CallSid") != "real-1" {
		var sids []string
		for _, d := range got {
			sids = append(sids, d.field("CallSid"))
		}
		t.Errorf("the target received %v, want only real-1", sids)
	}
	var dead struct {
		Messages []struct {
			Sid       string
			LastError string `json:"last_error"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(runCLI(t, "webhooks", "list", "-url", g.admin, "-route", "calls", "-state", "dead")), &dead); err != nil {
		t.Fatal(err)
	}
	if len(dead.Messages) != 2 {
		t.Errorf("exogate webhooks list shows %d dead, want 2", len(dead.Messages))
	}
	for _, m := range dead.Messages {
		if !strings.HasPrefix(m.LastError, "forged") {
			t.Errorf("%s dead with %q, want forged", m.Sid, m.LastError)
		}
	}
	lookups := 0
	for _, r := range farm.fakes["singapore-api"].Requests() {
		if r.Method == http.MethodGet && strings.Contains(r.RequestURI, "/Calls/") {
			lookups++
			if a := r.Header.Get("Authorization"); a != basicOf(acmeKey, acmeToken) {
				t.Errorf("lookup %s without the account's credentials", r.RequestURI)
			}
		}
	}
	if lookups < 3 {
		t.Errorf("Exotel was asked %d times, want once per callback", lookups)
	}
	// The counters move a moment after the store.
	eventually(t, "delivery_attempts_total{result=forged} is not 2", func() bool {
		return value(scrape(t, g.admin), "exogate_webhooks_delivery_attempts_total", map[string]string{"result": "forged"}) == 2
	})
}

// A call placed through the proxy with StatusCallback=exogate://calls:
// Exotel is given the route's public URL (with its token); when no
// terminal callback comes within reconcile_after, the gateway asks Exotel
// and delivers a synthetic terminal callback marked as polled. A second
// call whose own callback came is delivered once, not once more by the
// poll.
func TestWebhooksReconciliation(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	tg := newHookTarget(t)
	cfg := writeFile(t, "exogate.yaml", hooksConfig(farm, t.TempDir(), "", "", hookRoute("calls", tg.srv.URL, "      reconcile_after: 1s\n")))
	g := startHooks(t, cfg)
	place := func(sid string) {
		t.Helper()
		exotelCalls(farm, sid, map[string]string{"silent-1": "completed", "heard-1": "completed"})
		resp, body := send(t, "POST", g.base+"/v1/Accounts/acme/Calls/connect.json",
			"From=09999999999&To=08888888888&CallerId=07777777777&StatusCallback=exogate%3A%2F%2Fcalls",
			map[string]string{"Content-Type": formType})
		if resp.StatusCode != 200 || !strings.Contains(body, sid) {
			t.Fatalf("placing %s: %d %s", sid, resp.StatusCode, body)
		}
	}
	place("silent-1")
	place("heard-1")
	if code := postHook(g.hookURL("calls"), formType, callback("heard-1", "completed"), nil); code != 200 {
		t.Fatal(code)
	}
	want := "https://hooks.example.com/exotel/hooks/calls/" + hookToken("calls")
	connects := 0
	for _, r := range farm.fakes["singapore-api"].Requests() {
		if strings.HasSuffix(r.RequestURI, "/Calls/connect.json") {
			connects++
			v, _ := url.ParseQuery(string(r.Body))
			if v.Get("StatusCallback") != want || v.Get("From") != "09999999999" {
				t.Errorf("Exotel received StatusCallback %q, want the route's public URL", v.Get("StatusCallback"))
			}
		}
	}
	if connects != 2 {
		t.Fatalf("Exotel received %d connects", connects)
	}
	eventually(t, "no synthetic callback for the silent call", func() bool { return len(tg.delivered()["silent-1"]) > 0 })
	d := tg.delivered()["silent-1"][0]
	if d.header.Get("X-Exogate-Source") != "poll" || d.field("Status") != "completed" || d.field("EventType") != "terminal" || d.field("Duration") != "42" {
		t.Errorf("synthetic callback: source %q, body %q", d.header.Get("X-Exogate-Source"), d.body)
	}
	verifier, _ := standardwebhooks.NewWebhook(hooksSigningSecret)
	if err := verifier.Verify(d.body, d.header); err != nil {
		t.Errorf("synthetic callback's signature: %v", err)
	}
	eventually(t, "the store does not show both calls delivered", func() bool {
		return g.stats(t)["calls"] == routeStats{Delivered: 2}
	})
	if n := len(tg.delivered()["heard-1"]); n != 1 {
		t.Errorf("the call whose callback came was delivered %d times", n)
	}
	if n := value(scrape(t, g.admin), "exogate_webhooks_polled_total", nil); n < 1 {
		t.Errorf("polled_total %v", n)
	}
}

// A target that answers 410 Gone makes the callback dead at once; once the
// target is fixed, `exogate webhooks replay -state dead` delivers it, under
// the same webhook-id.
func TestWebhooksReplayFromDead(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	tg := newHookTarget(t)
	tg.answerWith(http.StatusGone)
	cfg := writeFile(t, "exogate.yaml", hooksConfig(farm, t.TempDir(), "", "", hookRoute("calls", tg.srv.URL, "")))
	g := startHooks(t, cfg)
	if code := postHook(g.hookURL("calls"), formType, callback("gone-1", "completed"), nil); code != 200 {
		t.Fatal(code)
	}
	eventually(t, "the callback is not dead", func() bool { return g.stats(t)["calls"] == routeStats{Dead: 1} })
	var dead struct {
		Messages []struct {
			ID, Sid, State string
			LastError      string `json:"last_error"`
		} `json:"messages"`
	}
	out := runCLI(t, "webhooks", "list", "-url", g.admin, "-route", "calls", "-state", "dead")
	if err := json.Unmarshal([]byte(out), &dead); err != nil || len(dead.Messages) != 1 {
		t.Fatalf("exogate webhooks list: %v %s", err, out)
	}
	m := dead.Messages[0]
	if m.Sid != "gone-1" || m.State != "dead" || m.LastError != "410 Gone" || m.ID != tg.all()[0].header.Get("webhook-id") {
		t.Errorf("dead message %+v", m)
	}
	if strings.Contains(out, "09999999999") {
		t.Error("the listing carries the callback's body")
	}
	if n := len(tg.all()); n != 1 {
		t.Errorf("a 410 was tried %d times, want once", n)
	}
	tg.answerWith(http.StatusNoContent)
	out = runCLI(t, "webhooks", "replay", "-url", g.admin, "-route", "calls", "-state", "dead")
	if !strings.Contains(out, `"replayed":1`) {
		t.Errorf("exogate webhooks replay printed %q", out)
	}
	eventually(t, "the replayed callback is not delivered", func() bool { return g.stats(t)["calls"] == routeStats{Delivered: 1} })
	got := tg.all()
	if len(got) != 2 || got[1].code != http.StatusNoContent || got[1].header.Get("webhook-id") != m.ID || got[1].field("CallSid") != "gone-1" {
		t.Errorf("after the replay the target received %d requests; the last %+v", len(got), got[len(got)-1].header)
	}
}

// Two replicas, each with its own store, on one Redis: Exotel sends the
// same callback to both (its retry reached the other one); the target
// gets it once. The replicas run on one host, as two pods with
// hostNetwork or two services on one machine would.
func TestWebhooksTwoReplicasDeliverOnce(t *testing.T) {
	t.Parallel()
	const n = 5
	farm := newFarm(t)
	rds := redistest.Start(t)
	tg := newHookTarget(t)
	var replicas []*hooksGateway
	for range 2 {
		cfg := writeFile(t, "exogate.yaml", hooksConfig(farm, t.TempDir(), "", fmt.Sprintf(`limits:
  backend: redis
  redis: {address: %q, key_prefix: "hooks:", timeout: 2s}
  replicas: 2
`, rds.Addr()), hookRoute("calls", tg.srv.URL, "")))
		replicas = append(replicas, startHooks(t, cfg))
	}
	for i := range n {
		body := callback(fmt.Sprintf("both-%d", i), "completed")
		for _, g := range replicas {
			if code := postHook(g.hookURL("calls"), formType, body, nil); code != 200 {
				t.Fatalf("replica answered %d", code)
			}
		}
	}
	// Each replica finishes its copy: delivered, or found claimed by the
	// other; then nothing is left to deliver.
	eventually(t, "the replicas did not both finish every callback", func() bool {
		for _, g := range replicas {
			if g.stats(t)["calls"] != (routeStats{Delivered: n}) {
				return false
			}
		}
		return true
	})
	got := tg.delivered()
	for i := range n {
		if c := len(got[fmt.Sprintf("both-%d", i)]); c != 1 {
			t.Errorf("both-%d delivered %d times, want once", i, c)
		}
	}
	// The counters move a moment after the store.
	eventually(t, "the copies found claimed by the other replica are not counted", func() bool {
		claimed := 0.0
		for _, g := range replicas {
			claimed += value(scrape(t, g.admin), "exogate_webhooks_delivery_attempts_total", map[string]string{"result": "claimed"})
		}
		return claimed == n
	})
}

// The callback path's secrets (the URL secrets, current and previous, the
// signing secret) and the URL tokens never reach exogate's logs, at debug
// level, through refusals, failed and dead deliveries, forged callbacks,
// exogate:// substitution, reconciliation, a reload, a reload refused,
// shutdown and a start refused for a malformed signing secret.
func TestWebhooksSecretsNotLogged(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	exotelCalls(farm, "placed-1", map[string]string{"placed-1": "completed", "real-1": "completed"})
	tg := newHookTarget(t)
	tg.answerWith(http.StatusInternalServerError)
	other := newHookTarget(t)
	other.answerWith(http.StatusGone)
	dir := t.TempDir()
	config := func(target string) string {
		c := hooksConfig(farm, dir, "  source_cidrs: [10.0.0.0/8]\n  trusted_proxies: [127.0.0.1/32]\n", "",
			hookRoute("calls", target, "      verify: exotel\n      reconcile_after: 1s\n"), hookRoute("other", other.srv.URL, ""))
		return strings.Replace(c, "level: info", "level: debug", 1)
	}
	cfg := writeFile(t, "exogate.yaml", config(tg.srv.URL))
	g := startHooks(t, cfg)
	exotel := map[string]string{"X-Forwarded-For": "10.9.9.9"}
	prev := g.hooks + "/hooks/calls/" + webhooks.Token([]byte(hooksPrevURLSecret), "calls")
	for _, c := range []struct {
		target, body string
		hdr          map[string]string
	}{
		{g.hookURL("calls"), callback("real-1", "completed"), exotel},
		{prev, callback("forged-1", "completed"), exotel},
		{g.hookURL("other"), callback("other-1", "completed"), exotel},
		{g.hookURL("calls"), callback("x", "completed"), nil},
		{g.hookURL("calls"), "Status=completed", exotel},
		{g.hookURL("calls") + "x", callback("x", "completed"), exotel},
		{g.hooks + "/hooks/nosuch/" + hookToken("calls"), callback("x", "completed"), exotel},
	} {
		postHook(c.target, formType, c.body, c.hdr)
	}
	resp, _ := send(t, "POST", g.base+"/v1/Accounts/acme/Calls/connect.json", "From=1&To=2&StatusCallback=exogate%3A%2F%2Fcalls", map[string]string{"Content-Type": formType})
	if resp.StatusCode != 200 {
		t.Fatalf("placing a call: %d", resp.StatusCode)
	}
	eventually(t, "the scenario did not run its course", func() bool {
		return g.stats(t)["calls"].Dead == 1 && g.stats(t)["other"].Dead == 1 && len(tg.all()) >= 4
	})
	// A reload that moves the route's target, and one refused.
	fixed := newHookTarget(t)
	if err := os.WriteFile(cfg, []byte(config(fixed.srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "real-1 and the polled call not delivered after the reload", func() bool {
		got := fixed.delivered()
		return len(got["real-1"]) == 1 && len(got["placed-1"]) == 1
	})
	if err := os.WriteFile(cfg, []byte(strings.Replace(config(fixed.srv.URL), "webhooks.db", "moved.db", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refused reload not logged", func() bool { return strings.Contains(g.logs.String(), "reload refused") })
	_ = g.cmd.Process.Signal(os.Interrupt)
	<-g.exited
	// A start refused: the signing secret is not valid base64.
	bad := "whsec_" + hooksURLSecret + "!!"
	env := append(hooksEnv(), "HOOKS_SIGNING_SECRET="+bad)
	_, stderr, err := runBinary(t, env, "-config", writeFile(t, "bad.yaml", hooksConfig(farm, t.TempDir(), "", "", hookRoute("calls", tg.srv.URL, ""))))
	if err == nil {
		t.Fatal("exogate started with a malformed signing secret")
	}
	logs := g.logs.String() + stderr
	for _, s := range append(hooksSecrets(), hooksSigningSecret, bad) {
		if strings.Contains(logs, s) {
			t.Errorf("a secret (%s...) is in exogate's logs", s[:6])
		}
	}
	if !strings.Contains(logs, `"webhooks: callback refused"`) || !strings.Contains(logs, "message dead") {
		t.Errorf("the logs do not show the scenario:\n%s", logs)
	}
}
