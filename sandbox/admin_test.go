package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// admin sends a request to the simulator's AdminHandler.
func (h *harness) admin(t *testing.T, method, path, body string) reply {
	t.Helper()
	rec := httptest.NewRecorder()
	h.sim.AdminHandler().ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return reply{status: rec.Code, contentType: rec.Header().Get("Content-Type"), body: rec.Body.String(), header: rec.Header()}
}

func (h *harness) addFault(t *testing.T, spec string) {
	t.Helper()
	if r := h.admin(t, http.MethodPost, "/sandbox/faults", spec); r.status != http.StatusCreated {
		t.Fatalf("adding %s: got %d: %s", spec, r.status, r.body)
	}
}

func TestFaultStatusCount(t *testing.T) {
	for _, tt := range []struct {
		spec   string
		status int
		want   string
	}{
		{`{"status":503,"count":3}`, 503, `{"RestException":{"Status":503,"Message":"Service Unavailable"}}`},
		{`{"status":429,"count":3}`, 429, `{"RestException":{"Status":429,"Message":"Too Many Requests"}}`},
	} {
		t.Run(tt.spec, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.addFault(t, tt.spec)
			for i := 0; i < 3; i++ {
				if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); r.status != tt.status || r.body != tt.want {
					t.Fatalf("request %d: got %d: %s", i, r.status, r.body)
				}
			}
			if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); r.status != 200 {
				t.Errorf("after the count: got %d", r.status)
			}
			if r := h.admin(t, http.MethodGet, "/sandbox/faults", ""); strings.TrimSpace(r.body) != "[]" {
				t.Errorf("spent fault still listed: %s", r.body)
			}
		})
	}
	t.Run("in the path's shape", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.addFault(t, `{"status":500}`)
		if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls", nil); r.status != 500 || !strings.Contains(r.body, "<Status>500</Status>") {
			t.Errorf("xml: %d %s", r.status, r.body)
		}
		if r := h.v2(t, http.MethodGet, "/v2/accounts/acme/calls", "", ""); r.status != 500 || !strings.Contains(r.body, `"http_code":500`) {
			t.Errorf("v2: %d %s", r.status, r.body)
		}
	})
}

// ratioOutcomes sends n requests through a simulator with a 50% fault and
// returns which failed.
func ratioOutcomes(t *testing.T, seed int64, n int) string {
	h := newHarness(t, Config{Seed: seed})
	h.addFault(t, `{"status":500,"ratio":0.5}`)
	var b strings.Builder
	for i := 0; i < n; i++ {
		if h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil).status == 500 {
			b.WriteByte('x')
		} else {
			b.WriteByte('.')
		}
	}
	return b.String()
}

func TestFaultRatio(t *testing.T) {
	a, b := ratioOutcomes(t, 7, 40), ratioOutcomes(t, 7, 40)
	if a != b {
		t.Errorf("same seed, different faults:\n%s\n%s", a, b)
	}
	if n := strings.Count(a, "x"); n == 0 || n == 40 {
		t.Errorf("a 0.5 ratio failed %d of 40: %s", n, a)
	}
	if c := ratioOutcomes(t, 8, 40); c == a {
		t.Errorf("another seed drew the same faults: %s", c)
	}
}

func TestFaultLatency(t *testing.T) {
	h := newHarness(t, Config{})
	h.addFault(t, `{"latency":"30ms","count":1}`)
	start := time.Now()
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); r.status != 200 {
		t.Fatalf("got %d", r.status)
	}
	if took := time.Since(start); took < 30*time.Millisecond {
		t.Errorf("answered after %v, before the 30ms latency", took)
	}
	if r := h.admin(t, http.MethodGet, "/sandbox/faults", ""); strings.TrimSpace(r.body) != "[]" {
		t.Errorf("spent fault still listed: %s", r.body)
	}
}

// connectClosed places a call to "to" and expects the connection closed
// without an answer.
func connectClosed(t *testing.T, h *harness, to string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/Accounts/acme/Calls/connect.json", strings.NewReader(connectForm(to).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(acme.Key, acme.Token)
	resp, err := h.srv.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got an answer %d, want the connection closed", resp.StatusCode)
	}
}

func TestFaultDrop(t *testing.T) {
	h := newHarness(t, Config{})
	h.addFault(t, `{"drop":true,"count":1}`)
	connectClosed(t, h, "09000000001")
	reqs := h.sim.Requests()
	if len(reqs) != 1 || !strings.Contains(string(reqs[0].Body), "To=09000000001") {
		t.Errorf("the dropped request was not read: %v", reqs)
	}
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); r.status != 200 || !strings.Contains(r.body, `"Total":0`) {
		t.Errorf("after the drop: %d %s", r.status, r.body)
	}
}

// TestFaultLoseAnswer: the request is carried out (the call is placed and
// rings to its end), and then the connection is closed without the
// answer: the outcome a caller cannot know.
func TestFaultLoseAnswer(t *testing.T) {
	h := newHarness(t, Config{})
	h.addFault(t, `{"lose_answer":true,"count":1}`)
	connectClosed(t, h, "09000000001")
	r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil)
	if r.status != 200 || !strings.Contains(r.body, `"Total":1`) || !strings.Contains(r.body, "09000000001") {
		t.Errorf("the call was not placed: %d %s", r.status, r.body)
	}
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); r.status != 200 {
		t.Errorf("the spent fault still applies: %d", r.status)
	}
}

func TestFaultsAdmin(t *testing.T) {
	h := newHarness(t, Config{})
	h.addFault(t, `{"status":503,"count":2}`)
	h.addFault(t, `{"latency":"1ms","ratio":0.25}`)
	r := h.admin(t, http.MethodGet, "/sandbox/faults", "")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list) != 2 {
		t.Fatalf("list %d: %s", r.status, r.body)
	}
	if list[0]["id"] != float64(1) || list[0]["status"] != float64(503) || list[0]["count"] != float64(2) ||
		list[1]["latency"] != "1ms" || list[1]["ratio"] != 0.25 {
		t.Errorf("list %s", r.body)
	}
	if r := h.admin(t, http.MethodDelete, "/sandbox/faults", ""); r.status != http.StatusNoContent {
		t.Errorf("delete: %d", r.status)
	}
	if r := h.admin(t, http.MethodGet, "/sandbox/faults", ""); strings.TrimSpace(r.body) != "[]" {
		t.Errorf("after delete: %s", r.body)
	}
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); r.status != 200 {
		t.Errorf("cleared fault still applied: %d", r.status)
	}

	for _, bad := range []string{
		``, `[]`, `{"status":503}{}`, `{"status":503,"colour":"red"}`, `{}`, `{"count":3}`,
		`{"status":200}`, `{"status":503,"drop":true}`, `{"drop":true,"lose_answer":true}`, `{"status":503,"lose_answer":true}`, `{"latency":"soon"}`, `{"latency":"-1s"}`,
		`{"latency":"1h"}`, `{"status":500,"ratio":1.5}`, `{"status":500,"count":-1}`,
	} {
		r := h.admin(t, http.MethodPost, "/sandbox/faults", bad)
		var m map[string]string
		if r.status != 400 || json.Unmarshal([]byte(r.body), &m) != nil || m["error"] == "" {
			t.Errorf("%s: got %d: %s", bad, r.status, r.body)
		}
	}
	if r := h.admin(t, http.MethodPut, "/sandbox/faults", "{}"); r.status != 405 || r.header.Get("Allow") == "" {
		t.Errorf("PUT: %d", r.status)
	}
	if r := h.admin(t, http.MethodGet, "/sandbox/other", ""); r.status != 404 {
		t.Errorf("unknown path: %d", r.status)
	}
}

func TestRequestsAdmin(t *testing.T) {
	h := newHarness(t, Config{Name: "singapore-api"})
	h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", connectForm("09000000001"))
	r := h.admin(t, http.MethodGet, "/sandbox/requests", "")
	if r.status != 200 || r.contentType != "application/json" {
		t.Fatalf("got %d: %s", r.status, r.body)
	}
	if strings.Contains(r.body, acme.Token) || strings.Contains(r.body, "YWNtZWtleTphY21ldG9rZW4") {
		t.Fatalf("the credentials leak: %s", r.body)
	}
	var list []struct {
		Server, Method, Host string
		RequestURI           string `json:"request_uri"`
		Header               map[string][]string
		Body                 string
		At                   time.Time
	}
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list) != 1 {
		t.Fatalf("%v: %s", err, r.body)
	}
	got := list[0]
	if got.Server != "singapore-api" || got.Method != "POST" || got.RequestURI != "/v1/Accounts/acme/Calls/connect.json" ||
		got.Header["Authorization"][0] != "Basic ***" || !strings.Contains(got.Body, "CallerId=08047112233") || got.At.IsZero() {
		t.Errorf("recorded %+v", got)
	}
	if r := h.admin(t, http.MethodDelete, "/sandbox/requests", ""); r.status != http.StatusNoContent {
		t.Errorf("delete: %d", r.status)
	}
	if r := h.admin(t, http.MethodGet, "/sandbox/requests", ""); strings.TrimSpace(r.body) != "[]" {
		t.Errorf("after delete: %s", r.body)
	}
	if m := maskHeader(http.Header{"Authorization": {"sometoken"}}); m["Authorization"][0] != "***" {
		t.Errorf("a bare value: %v", m)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, Config{Limit: 2, Period: time.Minute})
	var mu sync.Mutex
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h.sim.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	for i := 0; i < 2; i++ {
		if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); r.status != 429 || !strings.Contains(r.body, `{"RestException":{"Status":429,`) {
		t.Errorf("json: %d %s", r.status, r.body)
	}
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls", nil); r.status != 429 || !strings.Contains(r.body, `<Status>429</Status>`) {
		t.Errorf("xml: %d %s", r.status, r.body)
	}
	// Other buckets and other accounts count apart.
	if r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Sms/send.json", smsForm("09000000001")); r.status != 200 {
		t.Errorf("sms: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/v1/Accounts/bolt1m/Calls.json", nil)
	req.SetBasicAuth(bolt.Key, bolt.Token)
	if r := h.send(t, req); r.status != 200 {
		t.Errorf("other account: %d", r.status)
	}
	for i := 0; i < 2; i++ {
		h.v2(t, http.MethodGet, "/v2/accounts/acme/calls", "", "")
	}
	if r := h.v2(t, http.MethodGet, "/v2/accounts/acme/calls", "", ""); r.status != 429 || !strings.Contains(r.body, `"code":10724`) {
		t.Errorf("v2: %d %s", r.status, r.body)
	}
	// Wrong credentials do not count against the account.
	wrong, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/v1/Accounts/acme/Sms/Messages/x.json", nil)
	wrong.SetBasicAuth("x", "y")
	if r := h.send(t, wrong); r.status != 401 {
		t.Errorf("wrong credentials: %d", r.status)
	}
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/SMS/Messages/x.json", nil); r.status != 404 {
		t.Errorf("second sms request: %d", r.status)
	}

	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); r.status != 200 {
		t.Errorf("a period later: %d", r.status)
	}
}

func TestTestHooks(t *testing.T) {
	h := newHarness(t, Config{})
	h.sim.SetHeader("Retry-After", "7")
	h.sim.SetOverride(func(r Request) (int, string, bool) {
		if strings.Contains(r.RequestURI, "Sms") {
			return 503, "", true
		}
		if strings.Contains(r.RequestURI, "Numbers") {
			return 202, `{"ok":true}`, true
		}
		return 0, "", false
	})
	if r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Sms/send", smsForm("1")); r.status != 503 ||
		!strings.Contains(r.body, "<Status>503</Status>") || r.header.Get("Retry-After") != "7" {
		t.Errorf("override: %d %v %s", r.status, r.header, r.body)
	}
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Numbers/1.json", nil); r.status != 202 || r.body != `{"ok":true}` {
		t.Errorf("override body: %d %s", r.status, r.body)
	}
	h.sim.SetOverride(nil)
	h.sim.SetHeader("Retry-After", "")
	h.sim.SetLimit(1, time.Hour)
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); r.status != 200 || r.header.Get("Retry-After") != "" {
		t.Errorf("within SetLimit: %d %v", r.status, r.header)
	}
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); r.status != 429 || h.sim.Excess() != 1 {
		t.Errorf("over SetLimit: %d, excess %d", r.status, h.sim.Excess())
	}
	if h.sim.Count() != 4 || len(h.sim.Requests()) != 4 || h.sim.MaxInWindow(time.Hour) != 4 {
		t.Errorf("Count %d, Requests %d, MaxInWindow %d", h.sim.Count(), len(h.sim.Requests()), h.sim.MaxInWindow(time.Hour))
	}
	h.sim.Reset()
	if h.sim.Count() != 0 || len(h.sim.Requests()) != 0 || h.sim.Excess() != 0 || h.sim.MaxInWindow(time.Hour) != 0 {
		t.Errorf("after Reset: Count %d, Excess %d", h.sim.Count(), h.sim.Excess())
	}
}

func TestAborted(t *testing.T) {
	sim := New(Config{Accounts: []Account{acme}})
	defer sim.Close()
	req := httptest.NewRequest(http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", io.MultiReader(strings.NewReader("From=1"), errReader{}))
	sim.ServeHTTP(httptest.NewRecorder(), req)
	if sim.Aborted() != 1 || sim.Count() != 0 {
		t.Errorf("Aborted %d, Count %d", sim.Aborted(), sim.Count())
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestDeterminism(t *testing.T) {
	script := func(seed int64) []string {
		h := newHarness(t, Config{Seed: seed, Ring: time.Hour})
		var out []string
		for _, to := range []string{"09000000001", "09000000005", "09000000008"} {
			c := obj(t, decode(t, h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", connectForm(to))), "Call").(map[string]any)
			out = append(out, c["Sid"].(string)+" "+callOutcome(to).status)
		}
		out = append(out, obj(t, decode(t, h.do(t, http.MethodPost, "/v1/Accounts/acme/Sms/send.json", smsForm("09000000001"))), "SMSMessage", "Sid").(string))
		return out
	}
	a, b, c := script(42), script(42), script(43)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("same seed:\n%v\n%v", a, b)
	}
	for i := range a {
		if a[i] == c[i] {
			t.Errorf("seeds 42 and 43 gave the same %s", a[i])
		}
	}
	seen := map[string]bool{}
	for _, s := range a {
		if seen[s] {
			t.Errorf("Sid %s twice", s)
		}
		seen[s] = true
	}
}

func TestStoreCaps(t *testing.T) {
	st := newStore()
	for i := 0; i <= maxCalls; i++ {
		st.addCall(&call{res: callResource{Sid: strconv.Itoa(i)}})
		st.addSMS(&sms{res: smsResource{Sid: strconv.Itoa(i)}})
	}
	if len(st.calls) != maxCalls || len(st.callOrder) != maxCalls || st.calls["0"] != nil || st.calls["1"] == nil {
		t.Errorf("%d calls, %d in order", len(st.calls), len(st.callOrder))
	}
	if len(st.sms) != maxSMS || len(st.smsOrder) != maxSMS || st.sms["0"] != nil {
		t.Errorf("%d SMS, %d in order", len(st.sms), len(st.smsOrder))
	}
	sim := New(Config{})
	defer sim.Close()
	for i := 0; i <= maxRequests; i++ {
		sim.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/nowhere", nil))
	}
	if n := len(sim.Requests()); n != maxRequests || sim.Count() != maxRequests+1 {
		t.Errorf("%d requests kept, Count %d", n, sim.Count())
	}
}
