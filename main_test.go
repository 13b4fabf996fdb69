package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

	"github.com/exogate/exogate/internal/fakeexotel"
	"github.com/exogate/exogate/internal/gateway"
	"github.com/exogate/exogate/internal/testutil"
)

// Every API token and key the suite hands a gateway. TestMain fails the run if
// any of them shows up in any log output of any gateway the suite started.
var secrets = append([]string{
	"f81f2a5027e1463d812c4d2b36ea2d7a", "9c3e8a1b4f6d2e0a7c5b3d9f1e8a2c4d",
	"0123456789abcdef0123456789abcdef01234567", "fedcba9876543210fedcba9876543210fedcba98",
	"badbadbadbadbadbadbadbadbadbad00",
	billingSecret, callflowsSecret, opsSecret,
}, hooksSecrets()...)

const (
	acmeKey, acmeToken = "f81f2a5027e1463d812c4d2b36ea2d7a", "9c3e8a1b4f6d2e0a7c5b3d9f1e8a2c4d"
	mumKey, mumToken   = "0123456789abcdef0123456789abcdef01234567", "fedcba9876543210fedcba9876543210fedcba98"
)

// allLogs collects the log output of every gateway run in this suite.
var allLogs = &testutil.SyncBuffer{}

// gatewaysStarted counts the gateways the suite ran, in process or as a binary.
var gatewaysStarted atomic.Int64

func TestMain(m *testing.M) {
	code := m.Run()
	logs := allLogs.String()
	if logs == "" && gatewaysStarted.Load() > 0 {
		fmt.Fprintln(os.Stderr, "FAIL: the suite captured no gateway log output at all")
		code = 1
	}
	for _, s := range secrets {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s))} {
			if strings.Contains(logs, form) {
				fmt.Fprintf(os.Stderr, "FAIL: a secret (%s...) appears in the gateways' log output\n", s[:4])
				code = 1
			}
		}
	}
	for _, pair := range [][2]string{{acmeKey, acmeToken}, {mumKey, mumToken}} {
		if strings.Contains(logs, base64.StdEncoding.EncodeToString([]byte(pair[0]+":"+pair[1]))) {
			fmt.Fprintln(os.Stderr, "FAIL: a Basic credential appears in the gateways' log output")
			code = 1
		}
	}
	os.Exit(code)
}

// exotelFarm is four fake Exotel hosts over TLS, with their CA in a file.
type exotelFarm struct {
	fakes   map[string]*fakeexotel.Server
	servers map[string]*httptest.Server
	caFile  string
}

func newFarm(t *testing.T) *exotelFarm {
	t.Helper()
	f := &exotelFarm{fakes: map[string]*fakeexotel.Server{}, servers: map[string]*httptest.Server{}}
	var ca bytes.Buffer
	for _, name := range []string{"singapore-api", "singapore-ccm", "mumbai-api", "mumbai-ccm"} {
		fake := fakeexotel.New(name,
			fakeexotel.Account{SID: "acme", Key: acmeKey, Token: acmeToken},
			fakeexotel.Account{SID: "acme1m", Key: mumKey, Token: mumToken})
		srv := httptest.NewTLSServer(fake)
		t.Cleanup(srv.Close)
		f.fakes[name], f.servers[name] = fake, srv
		_ = pem.Encode(&ca, &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	}
	f.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f.caFile, ca.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *exotelFarm) config(extra string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
log: {level: info, format: json}
upstream:
  ca_file: %s
  regions:
    singapore: {api: %q, ccm: %q}
    mumbai: {api: %q, ccm: %q}
accounts:
  - sid: acme
    region: singapore
    credentials: {source: env, api_key_env: ACME_API_KEY, api_token_env: ACME_API_TOKEN}
  - sid: acme1m
    region: mumbai
    credentials: {source: env, api_key_env: M_API_KEY, api_token_env: M_API_TOKEN}
%s`, f.caFile, f.servers["singapore-api"].URL, f.servers["singapore-ccm"].URL,
		f.servers["mumbai-api"].URL, f.servers["mumbai-ccm"].URL, extra)
}

func (f *exotelFarm) all() []fakeexotel.Request {
	var out []fakeexotel.Request
	for _, s := range f.fakes {
		out = append(out, s.Requests()...)
	}
	return out
}

func (f *exotelFarm) reset() {
	for _, s := range f.fakes {
		s.Reset()
	}
}

func farmEnv() map[string]string {
	return map[string]string{
		"ACME_API_KEY": acmeKey, "ACME_API_TOKEN": acmeToken,
		"M_API_KEY": mumKey, "M_API_TOKEN": mumToken,
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var addrRE = regexp.MustCompile(`"addr":"([^"]+)"`)

// testGateway is a running `run`, in process.
type testGateway struct {
	base   string
	cancel context.CancelFunc
	done   chan error
	logs   *testutil.SyncBuffer
}

// startGateway calls run on :0 and waits until /readyz answers 200.
func startGateway(t *testing.T, args []string, env map[string]string) *testGateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &testGateway{cancel: cancel, done: make(chan error, 1), logs: &testutil.SyncBuffer{}}
	stderr := io.MultiWriter(g.logs, allLogs)
	gatewaysStarted.Add(1)
	started := make(chan string, 1)
	go func() {
		g.done <- runNotify(ctx, append([]string{"exogate"}, args...), func(k string) string { return env[k] }, nil, io.Discard, stderr,
			func(s *gateway.Server) { started <- s.Addr().String() })

	}()
	select {
	case addr := <-started:
		g.base = "http://" + addr
	case err := <-g.done:
		t.Fatalf("run exited before listening: %v\n%s", err, g.logs.String())
	}
	waitStatus(t, g.base+"/readyz", 200)
	t.Cleanup(func() { g.stop(t) })
	return g
}

func (g *testGateway) stop(t *testing.T) {
	if g.cancel == nil {
		return
	}
	g.cancel()
	g.cancel = nil
	select {
	case err := <-g.done:
		if err != nil {
			t.Errorf("run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("run did not return after cancel")
	}
}

func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	waitFor(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assertNoSecret(t, resp, b)
		return resp.StatusCode == want
	})
}

func send(t *testing.T, method, url, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	assertNoSecret(t, resp, b)
	return resp, string(b)
}

// assertNoSecret fails the test if an answer (headers or body; errors,
// /readyz and /healthz included) carries any secret of the suite.
func assertNoSecret(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	var all strings.Builder
	all.Write(body)
	for k, v := range resp.Header {
		all.WriteString(k + ": " + strings.Join(v, ",") + "\n")
	}
	for _, s := range secrets {
		if strings.Contains(all.String(), s) || strings.Contains(all.String(), base64.StdEncoding.EncodeToString([]byte(s))) {
			t.Errorf("an answer from %s carries a secret (%s...)", resp.Request.URL.Path, s[:4])
		}
	}
}

func basicOf(key, token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+token))
}

func TestEndToEndWithConfigFile(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	cfg := writeFile(t, "exogate.yaml", farm.config(""))
	g := startGateway(t, []string{"serve", "-config", cfg}, farmEnv())

	tests := []struct {
		name, method, path, body, ctype string
		server, auth                    string
	}{
		{"v1 connect form", "POST", "/v1/Accounts/acme/Calls/connect.json", "From=0999&To=0888&CallerId=0777", "application/x-www-form-urlencoded", "singapore-api", basicOf(acmeKey, acmeToken)},
		{"v1 sms xml", "POST", "/v1/Accounts/acme/Sms/send", "From=EXOTEL&To=0888&Body=hello%20world", "application/x-www-form-urlencoded", "singapore-api", basicOf(acmeKey, acmeToken)},
		{"v1 listing with query", "GET", "/v1/Accounts/ACME/Calls.json?PageSize=5&Status=completed", "", "", "singapore-api", basicOf(acmeKey, acmeToken)},
		{"v1 double slash", "POST", "/v1/Accounts/acme//Calls/connect.json", "From=1", "application/x-www-form-urlencoded", "singapore-api", basicOf(acmeKey, acmeToken)},
		{"v2 json ccm", "POST", "/v2/accounts/acme/calls", `{"from":{"contact_uri":"+91999"}}`, "application/json", "singapore-ccm", basicOf(acmeKey, acmeToken)},
		{"v3 ccm", "GET", "/v3/accounts/acme/calls/c1/legs", "", "", "singapore-ccm", basicOf(acmeKey, acmeToken)},
		{"mumbai v1", "POST", "/v1/Accounts/acme1m/Calls/connect.json", "From=1", "application/x-www-form-urlencoded", "mumbai-api", basicOf(mumKey, mumToken)},
		{"mumbai v2 ccm", "POST", "/v2/accounts/acme1m/calls", "{}", "application/json", "mumbai-ccm", basicOf(mumKey, mumToken)},
		{"mumbai whatsapp", "POST", "/v2/accounts/acme1m/messages", "{}", "application/json", "mumbai-api", basicOf(mumKey, mumToken)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			farm.reset()
			hdr := map[string]string{"Authorization": basicOf("stale", "oldtoken")}
			if tc.ctype != "" {
				hdr["Content-Type"] = tc.ctype
			}
			resp, body := send(t, tc.method, g.base+tc.path, tc.body, hdr)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			got := farm.all()
			if len(got) != 1 {
				t.Fatalf("fakes received %d requests", len(got))
			}
			r := got[0]
			if r.Server != tc.server || r.RequestURI != tc.path || string(r.Body) != tc.body {
				t.Errorf("received %s %q body %q; want %s %q body %q", r.Server, r.RequestURI, r.Body, tc.server, tc.path, tc.body)
			}
			if a := r.Header.Values("Authorization"); len(a) != 1 || a[0] != tc.auth {
				t.Errorf("Authorization %q", a)
			}
			if r.Host != strings.TrimPrefix(farm.servers[tc.server].URL, "https://") {
				t.Errorf("Host %q", r.Host)
			}
		})
	}

	t.Run("unknown account never leaves", func(t *testing.T) {
		farm.reset()
		resp, body := send(t, "GET", g.base+"/v1/Accounts/stranger/Calls.json", "", nil)
		if resp.StatusCode != 404 || resp.Header.Get("X-Exogate-Error") != "unknown_account" || !strings.Contains(body, `"RestException"`) {
			t.Errorf("%d %q %s", resp.StatusCode, resp.Header.Get("X-Exogate-Error"), body)
		}
		if n := len(farm.all()); n != 0 {
			t.Errorf("%d requests reached Exotel", n)
		}
	})

	t.Run("exotel 401 passes through untouched", func(t *testing.T) {
		farm.fakes["singapore-api"].SetAccount(fakeexotel.Account{SID: "acme", Key: acmeKey, Token: "rotated"})
		defer farm.fakes["singapore-api"].SetAccount(fakeexotel.Account{SID: "acme", Key: acmeKey, Token: acmeToken})
		resp, body := send(t, "GET", g.base+"/v1/Accounts/acme/Calls.json", "", nil)
		if resp.StatusCode != 401 || resp.Header.Get("X-Exogate-Error") != "" || !strings.Contains(body, "Authentication failed") {
			t.Errorf("%d %q %s", resp.StatusCode, resp.Header.Get("X-Exogate-Error"), body)
		}
	})

	logs := g.logs.String()
	if n := strings.Count(logs, `"message":"request"`); n < len(tests)+2 {
		t.Errorf("%d access lines for %d requests", n, len(tests)+2)
	}
	if strings.Contains(logs, "0999") || strings.Contains(logs, "completed") {
		t.Error("query or body values in the access log")
	}
}

// The seed's rate-limit scenario end to end: a tight bucket, callers queue,
// excess is refused in Exotel's shape with Retry-After, and Exotel never sees
// more than the limit.
func TestEndToEndRateLimit(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	cfg := writeFile(t, "exogate.yaml", farm.config(`limits:
  max_wait: 0s
  buckets:
    sms: {limit: 3, period: 1h, burst: 1}
`))
	g := startGateway(t, []string{"-config", cfg}, farmEnv())
	var codes []int
	var last *http.Response
	for i := 0; i < 5; i++ {
		resp, _ := send(t, "POST", g.base+"/v1/Accounts/acme/Sms/send.json", "To=1", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		codes = append(codes, resp.StatusCode)
		last = resp
	}
	if fmt.Sprint(codes) != "[200 429 429 429 429]" {
		t.Errorf("codes %v: a burst of 1 admits one, the refill of 2/h admits none within the test", codes)
	}
	if last.Header.Get("X-Exogate-Error") != "rate_limited" || last.Header.Get("Retry-After") == "" {
		t.Errorf("429 headers %v", last.Header)
	}
	if n := farm.fakes["singapore-api"].Count(); n != 1 {
		t.Errorf("Exotel received %d requests", n)
	}
	// Other buckets of the same account are not affected.
	if resp, _ := send(t, "GET", g.base+"/v1/Accounts/acme/Calls.json", "", nil); resp.StatusCode != 200 {
		t.Errorf("voice_v1 affected by sms: %d", resp.StatusCode)
	}
}

// Callers over the rate wait in line instead of failing, and Exotel still
// never sees more than the limit in any window.
func TestEndToEndCallersQueue(t *testing.T) {
	// Serial: it counts arrivals in 400 ms windows, which other tests' load would skew.
	farm := newFarm(t)
	cfg := writeFile(t, "exogate.yaml", farm.config(`limits:
  max_wait: 5s
  buckets:
    voice_v2: {limit: 4, period: 400ms, burst: 1}
`))
	g := startGateway(t, []string{"-config", cfg}, farmEnv())
	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(g.base+"/v2/accounts/acme/calls", "application/json", strings.NewReader("{}"))
			if err != nil {
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("caller %d got %d, want 200 after waiting", i, c)
		}
	}
	if n := strings.Count(g.logs.String(), `"limiter_wait_ms"`); n < 4 {
		t.Errorf("%d access lines report a limiter wait, want at least 4 of 6", n)
	}
	if n := farm.fakes["singapore-ccm"].Count(); n != 6 {
		t.Errorf("Exotel received %d", n)
	}
	if n := farm.fakes["singapore-ccm"].MaxInWindow(400 * time.Millisecond); n > 4 {
		t.Errorf("Exotel saw %d requests within 400ms, limit 4", n)
	}
}

func TestZeroSetupFromEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"EXOTEL_API_KEY": acmeKey, "EXOTEL_API_TOKEN": acmeToken, "EXOTEL_ACCOUNT_SID": "acme",
		"EXOGATE_LISTEN": "127.0.0.1:0", "EXOGATE_ADMIN_LISTEN": "-",
	}
	g := startGateway(t, nil, env)
	resp, body := send(t, "GET", g.base+"/v2/accounts/other/calls", "", nil)
	if resp.StatusCode != 404 || !strings.Contains(body, `"code":1000`) {
		t.Errorf("unknown account: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(g.logs.String(), `"accounts":["acme@singapore"]`) {
		t.Errorf("start-up line does not name the account: %s", g.logs.String())
	}
}

func TestStartupErrors(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"missing key", nil, map[string]string{"EXOTEL_API_TOKEN": "t", "EXOTEL_ACCOUNT_SID": "a"}, "EXOTEL_API_KEY"},
		{"missing token", nil, map[string]string{"EXOTEL_API_KEY": "k", "EXOTEL_ACCOUNT_SID": "a"}, "EXOTEL_API_TOKEN"},
		{"missing sid", nil, map[string]string{"EXOTEL_API_KEY": "k", "EXOTEL_API_TOKEN": "t"}, "EXOTEL_ACCOUNT_SID"},
		{"bad region", nil, map[string]string{"EXOTEL_API_KEY": "k", "EXOTEL_API_TOKEN": "t", "EXOTEL_ACCOUNT_SID": "a", "EXOTEL_REGION": "mars"}, "EXOTEL_REGION"},
		{"config env var unset", []string{"-config", writeFile(t, "c.yaml", farm.config(""))}, map[string]string{"ACME_API_KEY": "k"}, "ACME_API_TOKEN"},
		{"unknown key", []string{"-config", writeFile(t, "c.yaml", farm.config("limitz: {}\n"))}, nil, `unknown key "limitz"`},
		{"plain http refused", []string{"-config", writeFile(t, "c.yaml", strings.Replace(farm.config(""), "https://", "http://", 1))}, farmEnv(), "plain http"},
		{"vault plain http off loopback", []string{"-config", writeFile(t, "c.yaml", farm.config(vaultAccount+"vault: {address: 'http://vault.example:8200'}\n"))}, farmEnv(), "vault.address"},
		{"VAULT_ADDR plain http off loopback", []string{"-config", writeFile(t, "c.yaml", farm.config(vaultAccount))}, withEnv(farmEnv(), "VAULT_ADDR", "http://10.1.2.3:8200"), "vault.allow_insecure"},
		{"VAULT_SKIP_VERIFY", []string{"-config", writeFile(t, "c.yaml", farm.config(vaultAccount+"vault: {address: 'https://127.0.0.1:1'}\n"))}, withEnv(farmEnv(), "VAULT_SKIP_VERIFY", "true"), "VAULT_SKIP_VERIFY=true would turn off verification"},
		{"no such file", []string{"-config", "/nonexistent.yaml"}, nil, "no such file"},
		{"unknown command", []string{"launch"}, nil, `unknown command "launch"`},
		{"stray argument", []string{"serve", "extra"}, nil, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), append([]string{"exogate"}, tc.args...), func(k string) string { return tc.env[k] }, nil, io.Discard, io.MultiWriter(&stderr, allLogs))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to mention %q", err, tc.want)
			}
			for k, v := range tc.env {
				if (strings.Contains(k, "KEY") || strings.Contains(k, "TOKEN")) && len(v) > 3 && strings.Contains(err.Error(), v) {
					t.Errorf("error shows a value: %v", err)
				}
			}
		})
	}
}

// vaultAccount continues exotelFarm.config's accounts with one whose
// credentials are in Vault.
const vaultAccount = "  - sid: vaulted\n    region: singapore\n    credentials: {source: vault, vault: {path: exotel/vaulted}}\n"

func withEnv(env map[string]string, k, v string) map[string]string {
	env[k] = v
	return env
}

func TestInsecureHTTPOptIn(t *testing.T) {
	t.Parallel()
	fake := fakeexotel.New("plain", fakeexotel.Account{SID: "acme", Key: acmeKey, Token: acmeToken})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cfg := writeFile(t, "c.yaml", fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: ""}
upstream:
  allow_insecure_http: true
  regions: {singapore: {api: %q, ccm: %q}}
accounts:
  - {sid: acme, credentials: {source: env, api_key_env: ACME_API_KEY, api_token_env: ACME_API_TOKEN}}
`, srv.URL, srv.URL))
	g := startGateway(t, []string{"-config", cfg}, farmEnv())
	if !strings.Contains(g.logs.String(), `"level":"warn"`) || !strings.Contains(g.logs.String(), "allow_insecure_http") {
		t.Errorf("no start-up warning: %s", g.logs.String())
	}
	if resp, _ := send(t, "GET", g.base+"/v1/Accounts/acme/Calls.json", "", nil); resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestCheckCommand(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	cfg := writeFile(t, "exogate.yaml", farm.config(""))
	var out bytes.Buffer
	err := run(context.Background(), []string{"exogate", "check", "-config", cfg}, func(k string) string { return farmEnv()[k] }, nil, &out, allLogs)
	if err != nil {
		t.Fatalf("check failed: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ok   acme (singapore): 200") || !strings.Contains(lines[1], "acme1m (mumbai): 200 OK: credentials are valid") {
		t.Errorf("output:\n%s", out.String())
	}
	got := farm.all()
	if len(got) != 2 {
		t.Fatalf("fakes received %d requests", len(got))
	}
	for _, r := range got {
		if !strings.HasSuffix(r.RequestURI, "/Calls.json") || r.Method != "GET" {
			t.Errorf("check sent %s %s", r.Method, r.RequestURI)
		}
	}

	// A rotated token at Exotel: 401 with the seed's hint, exit non-zero.
	farm.fakes["mumbai-api"].SetAccount(fakeexotel.Account{SID: "acme1m", Key: mumKey, Token: "newtoken"})
	out.Reset()
	err = run(context.Background(), []string{"exogate", "check", "-config", cfg}, func(k string) string { return farmEnv()[k] }, nil, &out, allLogs)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 accounts failed") {
		t.Errorf("err %v", err)
	}
	if !strings.Contains(out.String(), "FAIL acme1m (mumbai): 401 Unauthorized: authentication failed: verify the API key and API token") {
		t.Errorf("output:\n%s", out.String())
	}
	// No way to Exotel (DNS, a refused connection, TLS): said so, and where
	// the cause is.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	cfgDead := writeFile(t, "dead.yaml", strings.ReplaceAll(farm.config(""), farm.servers["singapore-api"].URL, strings.Replace(dead.URL, "http:", "https:", 1)))
	out.Reset()
	_ = run(context.Background(), []string{"exogate", "check", "-config", cfgDead}, func(k string) string { return farmEnv()[k] }, nil, &out, allLogs)
	if !strings.Contains(out.String(), "FAIL acme (singapore): 502 Bad Gateway: no connection to Exotel") || !strings.Contains(out.String(), "DNS") {
		t.Errorf("unreachable: output:\n%s", out.String())
	}
	// Each of the seed's outcomes gets its hint.
	for status, hint := range map[int]string{403: "permission", 404: "region is wrong", 429: "rate limited"} {
		farm.fakes["singapore-api"].SetOverride(func(fakeexotel.Request) (int, string, bool) { return status, "", true })
		out.Reset()
		_ = run(context.Background(), []string{"exogate", "check", "-config", cfg}, func(k string) string { return farmEnv()[k] }, nil, &out, allLogs)
		if !strings.Contains(out.String(), fmt.Sprintf("FAIL acme (singapore): %d", status)) || !strings.Contains(out.String(), hint) {
			t.Errorf("%d: output:\n%s", status, out.String())
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"exogate", "version"}, func(string) string { return "" }, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "exogate ") {
		t.Errorf("version output %q", out.String())
	}
}

// The built binary, as a user runs it: SIGTERM turns /readyz to 503, the
// in-flight request completes, and the process exits 0.
func TestBinaryGracefulShutdown(t *testing.T) {
	t.Parallel()
	bin := exogateBinary(t)
	farm := newFarm(t)
	release := make(chan struct{})
	farm.fakes["singapore-ccm"].SetOverride(func(r fakeexotel.Request) (int, string, bool) {
		<-release
		return 0, "", false
	})
	cfg := writeFile(t, "exogate.yaml", farm.config("shutdown_delay: 300ms\nshutdown_timeout: 20s\n"))
	var logs testutil.SyncBuffer
	cmd := exec.Command(bin, "serve", "-config", cfg)
	cmd.Env = []string{"ACME_API_KEY=" + acmeKey, "ACME_API_TOKEN=" + acmeToken, "M_API_KEY=" + mumKey, "M_API_TOKEN=" + mumToken}
	out := io.MultiWriter(&logs, allLogs)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	gatewaysStarted.Add(1)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()
	var base string
	waitFor(t, func() bool {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			base = "http://" + m[1]
		}
		return base != ""
	})
	waitStatus(t, base+"/readyz", 200)

	inflight := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/v2/accounts/acme/calls", "application/json", strings.NewReader(`{"k":1}`))
		if err != nil {
			inflight <- -1
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	waitFor(t, func() bool { return farm.fakes["singapore-ccm"].Count() > 0 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, base+"/readyz", 503)
	close(release)
	if code := <-inflight; code != 200 {
		t.Errorf("in-flight request got %d during shutdown, want 200", code)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("binary did not exit after SIGTERM")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("listener still accepting after exit")
	}
}

// Rotation under load, on disk: the token is rotated in the account's files
// (a Kubernetes Secret volume's symlink swap) and at the same instant Exotel
// stops accepting the old one. No client call may fail.
func TestEndToEndRotationUnderLoadFromFiles(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	dir := t.TempDir()
	writeSecret := func(gen int, token string) {
		ts := filepath.Join(dir, fmt.Sprintf("..gen%d", gen))
		if err := os.Mkdir(ts, 0o700); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(ts, "api_key"), []byte(acmeKey), 0o600)
		_ = os.WriteFile(filepath.Join(ts, "api_token"), []byte(token), 0o600)
		_ = os.Symlink(filepath.Base(ts), filepath.Join(dir, "..tmp"))
		if err := os.Rename(filepath.Join(dir, "..tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"api_key", "api_token"} {
		_ = os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f))
	}
	writeSecret(1, acmeToken)
	const newToken = "badbadbadbadbadbadbadbadbadbad00"
	cfg := strings.Replace(farm.config(`rotation: {file_poll_interval: 1h}
limits:
  buckets: {voice_v1: {limit: 100000, period: 1s, burst: 100}}
`), "credentials: {source: env, api_key_env: ACME_API_KEY, api_token_env: ACME_API_TOKEN}",
		fmt.Sprintf("credentials: {source: file, api_key_file: %s, api_token_file: %s}", filepath.Join(dir, "api_key"), filepath.Join(dir, "api_token")), 1)
	g := startGateway(t, []string{"-config", writeFile(t, "exogate.yaml", cfg)}, farmEnv())

	var (
		mu       sync.Mutex
		failures []string
		total    int
		rotated  time.Time
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Post(g.base+"/v1/Accounts/acme/Calls/connect.json", "application/x-www-form-urlencoded", strings.NewReader("From=1&To=2"))
				mu.Lock()
				total++
				if err != nil {
					failures = append(failures, err.Error())
				} else if resp.StatusCode != 200 {
					failures = append(failures, resp.Status)
				}
				mu.Unlock()
				if resp != nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	waitFor(t, func() bool { return farm.fakes["singapore-api"].Count() >= 50 })
	// Rotate centrally: the new token reaches the files and Exotel together.
	mu.Lock()
	writeSecret(2, newToken)
	farm.fakes["singapore-api"].SetAccount(fakeexotel.Account{SID: "acme", Key: acmeKey, Token: newToken})
	rotated = time.Now()
	mu.Unlock()
	base := farm.fakes["singapore-api"].Count()
	waitFor(t, func() bool { return farm.fakes["singapore-api"].Count() >= base+100 })
	close(stop)
	wg.Wait()

	if len(failures) > 0 {
		t.Errorf("%d of %d client calls failed across the rotation: %v", len(failures), total, failures[:min(5, len(failures))])
	}
	var rejected int
	var firstNew time.Duration
	newAuth := basicOf(acmeKey, newToken)
	for _, r := range farm.fakes["singapore-api"].Requests() {
		if r.At.Before(rotated) {
			continue
		}
		if r.Header.Get("Authorization") == newAuth {
			if firstNew == 0 {
				firstNew = r.At.Sub(rotated)
			}
		} else {
			rejected++
		}
	}
	t.Logf("rotation on disk: %d client calls, %d failed, %d refused by Exotel with the old token (each replayed), first use of the new token %v after rotation",
		total, len(failures), rejected, firstNew)
	if firstNew == 0 {
		t.Error("the new token was never used")
	}
	// Requests already in flight at the rotation may each meet one 401; no more.
	if rejected > 4 {
		t.Errorf("%d requests sent with the old token after the rotation, want at most the 4 in flight", rejected)
	}
}

// waitFor polls cond until it holds, failing the test after 20s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, "condition not met", cond)
}

// exogateBinary builds the gateway once for the whole test run.
func exogateBinary(t *testing.T) string { return testutil.Binary(t, ".") }

// process is a running exogate binary.
type process struct {
	cmd  *exec.Cmd
	base string
	logs *testutil.SyncBuffer
}

// startBinary runs the built binary with a config file and the farm's
// credentials, and waits until it is ready.
func startBinary(t *testing.T, cfgFile string) *process {
	t.Helper()
	p := &process{logs: &testutil.SyncBuffer{}}
	p.cmd = exec.Command(exogateBinary(t), "-config", cfgFile)
	env := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range farmEnv() {
		env = append(env, k+"="+v)
	}
	p.cmd.Env = env
	out := io.MultiWriter(p.logs, allLogs)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	gatewaysStarted.Add(1)
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	})
	waitFor(t, func() bool {
		if m := addrRE.FindStringSubmatch(p.logs.String()); m != nil {
			p.base = "http://" + m[1]
		}
		return p.base != ""
	})
	waitStatus(t, p.base+"/readyz", 200)
	return p
}
