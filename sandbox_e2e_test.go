package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/testutil"
)

// sandboxProc is a running `exogate sandbox`.
type sandboxProc struct {
	base, admin string
	logs        *testutil.SyncBuffer
	cmd         *exec.Cmd
}

// freeAddr returns a loopback address no one listens on now (for the
// webhook listener, whose public URL must be known before it binds).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startSandbox(t *testing.T, args ...string) *sandboxProc {
	t.Helper()
	return startSandboxEnv(t, nil, args...)
}

// startSandboxEnv starts exogate sandbox with env added to a bare
// environment.
func startSandboxEnv(t *testing.T, env []string, args ...string) *sandboxProc {
	t.Helper()
	p := &sandboxProc{logs: &testutil.SyncBuffer{}}
	cmd := exec.Command(exogateBinary(t), append([]string{"sandbox", "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-ring", "20ms"}, args...)...)
	p.cmd = cmd
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out := io.MultiWriter(p.logs, allLogs)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	waitFor(t, func() bool {
		if m := addrRE.FindStringSubmatch(p.logs.String()); m != nil {
			p.base = "http://" + m[1]
		}
		if m := adminRE.FindStringSubmatch(p.logs.String()); m != nil {
			p.admin = "http://" + m[1]
		}
		return p.base != "" && p.admin != ""
	})
	waitStatus(t, p.base+"/readyz", 200)
	return p
}

// post sends a form to the sandbox and returns the status and body.
func (p *sandboxProc) post(t *testing.T, path string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(p.base+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// callbackSink records the callbacks an internal service receives.
type callbackSink struct {
	mu   sync.Mutex
	got  []http.Header
	body []string
}

func (c *callbackSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.got, c.body = append(c.got, r.Header.Clone()), append(c.body, string(b))
	c.mu.Unlock()
}

func (c *callbackSink) bodies() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.body...)
}

// The whole loop on one machine: a call placed through the sandbox with
// StatusCallback=exogate://calls rings, ends by the outcome rule (a To
// ending in 5 is busy), and its callback flows through the webhook ingress
// to the route's target, signed; the call's details and the listing
// agree; a request missing a field gets Exotel's 400 in the path's shape.
func TestSandboxCallFlowsToTheRoute(t *testing.T) {
	t.Parallel()
	sink := &callbackSink{}
	target := httptest.NewServer(sink)
	defer target.Close()
	p := startSandbox(t, "-hooks", freeAddr(t), "-route", "calls="+target.URL)

	code, body := p.post(t, "/v1/Accounts/acme/Calls/connect.json", url.Values{
		"From": {"09876543210"}, "To": {"08012345675"}, "CallerId": {"08039591000"},
		"StatusCallback": {"exogate://calls"}, "StatusCallbackEvents[]": {"terminal"}, "CustomField": {"order-42"},
	})
	var placed struct{ Call struct{ Sid, Status string } }
	if err := json.Unmarshal([]byte(body), &placed); code != 200 || err != nil || placed.Call.Sid == "" || placed.Call.Status != "in-progress" {
		t.Fatalf("connect: %d %s", code, body)
	}
	eventually(t, "the callback at the route's target", func() bool { return len(sink.bodies()) > 0 })
	cb := sink.bodies()[0]
	for _, want := range []string{placed.Call.Sid, "busy", "terminal", "order-42"} {
		if !strings.Contains(cb, want) {
			t.Errorf("the delivered callback lacks %q: %s", want, cb)
		}
	}
	sink.mu.Lock()
	h := sink.got[0]
	sink.mu.Unlock()
	if h.Get("Webhook-Id") == "" || !strings.HasPrefix(h.Get("Webhook-Signature"), "v1,") {
		t.Errorf("the delivery is not signed (Standard Webhooks): %v", h)
	}
	// The ingress is served as in production, over HTTPS: no plain-HTTP
	// exception, and the simulator's callbacks arrived over TLS.
	if logs := p.logs.String(); strings.Contains(logs, "allow_insecure_http") || !strings.Contains(logs, `"webhooks_addr"`) ||
		!strings.Contains(logs, `"public_url":"https://`) {
		t.Errorf("the webhook ingress is not served over HTTPS:\n%s", logs)
	}

	resp, details := send(t, "GET", p.base+"/v1/Accounts/acme/Calls/"+placed.Call.Sid+".json", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(details, `"Status":"busy"`) {
		t.Errorf("details: %d %s", resp.StatusCode, details)
	}
	resp, list := send(t, "GET", p.base+"/v1/Accounts/acme/Calls.json?To=08012345675", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(list, placed.Call.Sid) || !strings.Contains(list, `"Metadata"`) {
		t.Errorf("listing: %d %s", resp.StatusCode, list)
	}
	if resp, nf := send(t, "GET", p.base+"/v1/Accounts/acme/Calls/0000.json", "", nil); resp.StatusCode != 404 || !strings.Contains(nf, "RestException") {
		t.Errorf("unknown Sid: %d %s", resp.StatusCode, nf)
	}
	code, xml := p.post(t, "/v1/Accounts/acme/Calls/connect", url.Values{"From": {"1"}, "CallerId": {"2"}})
	if code != 400 || !strings.Contains(xml, "<RestException><Status>400</Status>") {
		t.Errorf("missing To: %d %s", code, xml)
	}
}

// The same seed and the same requests give the same Sids; another seed
// gives others.
func TestSandboxIsDeterministic(t *testing.T) {
	t.Parallel()
	sids := func(seed string) []string {
		p := startSandbox(t, "-seed", seed)
		var out []string
		for i := range 3 {
			_, body := p.post(t, "/v1/Accounts/acme/Calls/connect.json", url.Values{
				"From": {"0999"}, "To": {fmt.Sprintf("080%d", i)}, "CallerId": {"0777"}})
			var placed struct{ Call struct{ Sid string } }
			_ = json.Unmarshal([]byte(body), &placed)
			out = append(out, placed.Call.Sid)
		}
		return out
	}
	a, b, c := sids("7"), sids("7"), sids("8")
	if strings.Join(a, ",") != strings.Join(b, ",") || a[0] == "" {
		t.Errorf("seed 7 gave %v then %v", a, b)
	}
	if strings.Join(a, ",") == strings.Join(c, ",") {
		t.Errorf("seeds 7 and 8 gave the same Sids %v", a)
	}
}

// Faults on demand through the admin listener, and the requests read back
// with the credentials masked; SMS and v2 answer in their shapes.
func TestSandboxFaultsRequestsSMSAndV2(t *testing.T) {
	t.Parallel()
	p := startSandbox(t)
	resp, body := send(t, "POST", p.admin+"/sandbox/faults", `{"status":503,"count":1}`, map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /sandbox/faults: %d %s", resp.StatusCode, body)
	}
	if code, b := p.post(t, "/v1/Accounts/acme/Calls/connect.json", url.Values{"From": {"1"}, "To": {"2"}, "CallerId": {"3"}}); code != 503 {
		t.Errorf("with a 503 fault: %d %s", code, b)
	}
	if code, b := p.post(t, "/v1/Accounts/acme/Sms/send.json", url.Values{"From": {"EXOTEL"}, "To": {"0999"}, "Body": {"hi"}}); code != 200 || !strings.Contains(b, `"SMSMessage"`) {
		t.Errorf("SMS after the one fault: %d %s", code, b)
	}
	resp, v2 := send(t, "POST", p.base+"/v2/accounts/acme/calls",
		`{"from":{"contact_uri":"0999"},"to":{"contact_uri":"0888"},"virtual_number":"0777"}`, map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != 200 || !strings.Contains(v2, `"http_code":200`) {
		t.Errorf("v2 call: %d %s", resp.StatusCode, v2)
	}
	// A lost answer: the call is placed, exogate says the outcome is
	// unknown, and the call can be found.
	if resp, b := send(t, "POST", p.admin+"/sandbox/faults", `{"lose_answer":true,"count":1}`, nil); resp.StatusCode != 201 {
		t.Fatalf("lose_answer fault: %d %s", resp.StatusCode, b)
	}
	code, b := p.post(t, "/v1/Accounts/acme/Calls/connect.json", url.Values{"From": {"1"}, "To": {"0800555"}, "CallerId": {"3"}})
	if code != 502 || !strings.Contains(b, "may have been carried out") {
		t.Errorf("with a lost answer: %d %s", code, b)
	}
	if resp, list := send(t, "GET", p.base+"/v1/Accounts/acme/Calls.json?To=0800555", "", nil); resp.StatusCode != 200 || !strings.Contains(list, `"Total":1`) {
		t.Errorf("the call whose answer was lost: %d %s", resp.StatusCode, list)
	}
	_, reqs := send(t, "GET", p.admin+"/sandbox/requests", "", nil)
	if !strings.Contains(reqs, "Basic ***") || strings.Contains(reqs, "sandbox_api_token") || strings.Contains(reqs, "c2FuZGJveF9hcGlfa2V5") {
		t.Errorf("recorded requests do not mask the credentials: %.300s", reqs)
	}
}

// Exotel's 200 requests per minute: the gateway's limiter keeps the
// sandbox's Exotel from ever answering 429; past the budget a caller gets
// exogate's own 429 in Exotel's shape.
func TestSandboxRateLimit(t *testing.T) {
	t.Parallel()
	p := startSandbox(t)
	// 260 callers at once: more than the bucket's burst plus what its
	// refill serves within limits.max_wait.
	var mu sync.Mutex
	var limited, admitted int
	var wg sync.WaitGroup
	for range 260 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(p.base + "/v1/Accounts/acme/Calls.json")
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			switch resp.StatusCode {
			case 200:
				admitted++
			case 429:
				limited++
				if resp.Header.Get("X-Exogate-Error") == "" || !strings.Contains(string(body), "RestException") {
					t.Errorf("a 429 that is not exogate's, in Exotel's shape: %v %s", resp.Header, body)
				}
			default:
				t.Errorf("%d %s", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	t.Logf("260 callers at once: %d admitted, %d refused with 429", admitted, limited)
	if limited == 0 {
		t.Error("260 callers at once were all admitted")
	}
	_, reqs := send(t, "GET", p.admin+"/sandbox/requests", "", nil)
	if strings.Contains(reqs, `"status":429`) {
		t.Error("the simulated Exotel answered 429")
	}
}

// The outcome rule on To's last digit, read back through the gateway from
// the call details after the ring, in v1 XML; and an SMS's callback, sent
// by the simulator straight to a local server, form-urlencoded with
// Exotel's fields.
func TestSandboxOutcomesAndSMSCallback(t *testing.T) {
	t.Parallel()
	sink := &callbackSink{}
	target := httptest.NewServer(sink)
	defer target.Close()
	p := startSandbox(t)
	want := map[string]string{"0": "completed", "5": "busy", "6": "no-answer", "7": "failed", "8": "canceled", "9": "completed"}
	sids := map[string]string{}
	for digit := range want {
		_, body := p.post(t, "/v1/Accounts/acme/Calls/connect.json", url.Values{
			"From": {"0999"}, "To": {"0801234567" + digit}, "CallerId": {"0777"}})
		var placed struct{ Call struct{ Sid string } }
		if err := json.Unmarshal([]byte(body), &placed); err != nil || placed.Call.Sid == "" {
			t.Fatalf("connect to ...%s: %s", digit, body)
		}
		sids[digit] = placed.Call.Sid
	}
	for digit, status := range want {
		eventually(t, fmt.Sprintf("the call to ...%s to end %s", digit, status), func() bool {
			_, xml := send(t, "GET", p.base+"/v1/Accounts/acme/Calls/"+sids[digit], "", nil)
			return strings.Contains(xml, "<TwilioResponse><Call>") && strings.Contains(xml, "<Status>"+status+"</Status>")
		})
	}

	code, body := p.post(t, "/v1/Accounts/acme/Sms/send.json", url.Values{
		"From": {"EXOTEL"}, "To": {"09876543215"}, "Body": {"Your OTP is 1234"}, "StatusCallback": {target.URL + "/sms"}})
	if code != 200 || !strings.Contains(body, `"Status":"queued"`) {
		t.Fatalf("Sms/send: %d %s", code, body)
	}
	eventually(t, "the SMS callback", func() bool { return len(sink.bodies()) > 0 })
	sink.mu.Lock()
	ct, cb := sink.got[0].Get("Content-Type"), sink.body[0]
	sink.mu.Unlock()
	form, err := url.ParseQuery(cb)
	if ct != "application/x-www-form-urlencoded" || err != nil {
		t.Fatalf("SMS callback: %q %s", ct, cb)
	}
	for _, f := range []string{"SmsSid", "To", "Status", "SmsUnits", "DetailedStatus", "DetailedStatusCode"} {
		if form.Get(f) == "" {
			t.Errorf("the SMS callback lacks %s: %s", f, cb)
		}
	}
	for _, f := range []string{"DateSent", "CustomField"} { // empty for an SMS never sent, and without one
		if _, ok := form[f]; !ok {
			t.Errorf("the SMS callback has no %s field: %s", f, cb)
		}
	}
	if form.Get("Status") != "failed-dnd" {
		t.Errorf("an SMS to a number ending in 5: %s, want failed-dnd", form.Get("Status"))
	}
}

// With an admin token (EXOGATE_ADMIN_TOKEN_FILE, as a container that
// publishes its admin port must have), /sandbox/ needs it to read the
// requests and set faults, and the answers never hold it.
func TestSandboxAdminToken(t *testing.T) {
	t.Parallel()
	token := strings.Repeat("9f3b", 16)
	file := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startSandboxEnv(t, []string{"EXOGATE_ADMIN_TOKEN_FILE=" + file})
	bearer := map[string]string{"Authorization": "Bearer " + token}
	for _, tc := range []struct {
		method, path, body string
		header             map[string]string
		want               int
	}{
		{"GET", "/sandbox/requests", "", nil, 401},
		{"POST", "/sandbox/faults", `{"status":503,"count":1}`, nil, 401},
		{"GET", "/sandbox/faults", "", nil, 401},
		{"POST", "/sandbox/faults", `{"status":503,"count":1}`, bearer, 201},
		{"GET", "/sandbox/requests", "", bearer, 200},
		{"GET", "/status", "", nil, 200},
	} {
		resp, body := send(t, tc.method, p.admin+tc.path, tc.body, tc.header)
		if resp.StatusCode != tc.want || strings.Contains(body, token) {
			t.Errorf("%s %s (token %t): %d %s", tc.method, tc.path, tc.header != nil, resp.StatusCode, body)
		}
	}
	// The fault set with the token is in force.
	if code, _ := p.post(t, "/v1/Accounts/acme/Calls/connect.json", url.Values{"From": {"1"}, "To": {"2"}, "CallerId": {"3"}}); code != 503 {
		t.Errorf("the fault set with the token: %d", code)
	}
	if strings.Contains(p.logs.String(), token) {
		t.Error("the log holds the admin token")
	}
}
