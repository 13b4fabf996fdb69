package sandbox

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/exogate/exogate/internal/testutil"
	"github.com/rs/zerolog"
)

// TestCallbackURLMustBeHTTP: a StatusCallback that is not an http or https
// URL is refused when the call or SMS is placed, and nothing is placed.
func TestCallbackURLMustBeHTTP(t *testing.T) {
	h := newHarness(t, Config{})
	for _, cb := range []string{"file:///etc/passwd", "gopher://127.0.0.1:70/x", "ftp://example.com/", "http://", "//example.com/x", "not a url", "http://exa mple.com/"} {
		form := connectForm("09000000001")
		form.Set("StatusCallback", cb)
		if r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form); r.status != 400 || !strings.Contains(r.body, "StatusCallback") {
			t.Errorf("call %q: got %d: %s", cb, r.status, r.body)
		}
		sf := smsForm("09000000001")
		sf.Set("StatusCallback", cb)
		if r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Sms/send.json", sf); r.status != 400 || !strings.Contains(r.body, "StatusCallback") {
			t.Errorf("sms %q: got %d: %s", cb, r.status, r.body)
		}
		sf.Set("To", "09000000001,09000000002")
		if r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Sms/bulksend.json", sf); r.status != 400 || !strings.Contains(r.body, "StatusCallback") {
			t.Errorf("bulk %q: got %d: %s", cb, r.status, r.body)
		}
	}
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); !strings.Contains(r.body, `"Total":0`) {
		t.Errorf("a refused call was placed: %s", r.body)
	}
	form := connectForm("09000000001")
	form.Set("StatusCallback", "HTTPS://127.0.0.1:1/cb?x=1")
	if r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form); r.status != 200 {
		t.Errorf("an https callback: got %d: %s", r.status, r.body)
	}
}

// TestCallbackNotToLinkLocal: the default client refuses to send a callback
// to a link-local address such as a cloud metadata service.
func TestCallbackNotToLinkLocal(t *testing.T) {
	var logs testutil.SyncBuffer
	h := newHarness(t, Config{Logger: zerolog.New(&logs)})
	for _, cb := range []string{"http://169.254.169.254/latest/meta-data/", "http://169.254.1.1:8080/x"} {
		form := connectForm("09000000001")
		form.Set("StatusCallback", cb)
		if r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form); r.status != 200 {
			t.Fatalf("%s: got %d", cb, r.status)
		}
	}
	waitFor(t, "two refused callbacks", func() bool { return strings.Count(logs.String(), "not sent to") == 2 })
	if strings.Contains(logs.String(), "latest/meta-data") {
		t.Errorf("the URL was logged: %s", logs.String())
	}
}

// TestCallbacksInFlightAreBounded: at most maxCallbacksInFlight callbacks are
// sent at once; the rest wait for a slot.
func TestCallbacksInFlightAreBounded(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	inFlight, most := 0, 0
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	defer rc.Close()
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	defer releaseAll() // before rc.Close, also when the test fails
	h := newHarness(t, Config{})
	n := maxCallbacksInFlight + 3
	for i := 0; i < n; i++ {
		form := connectForm("09000000001")
		form.Set("StatusCallback", rc.URL)
		h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form)
	}
	waitFor(t, "the slots taken and the rest waiting", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return inFlight == maxCallbacksInFlight && h.sim.callbacksWaiting.Load() == 3
	})
	releaseAll()
	h.sim.Close()
	mu.Lock()
	defer mu.Unlock()
	if most != maxCallbacksInFlight {
		t.Errorf("%d callbacks in flight at once, want %d", most, maxCallbacksInFlight)
	}
}

// TestPendingIsBounded: past maxPending calls and SMS waiting to end, new
// ones are refused with 429 and nothing is placed.
func TestPendingIsBounded(t *testing.T) {
	h := newHarness(t, Config{Ring: 1 << 62})
	h.sim.pending.Store(maxPending - 1)
	if r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", connectForm("09000000001")); r.status != 200 {
		t.Fatalf("the last slot: got %d: %s", r.status, r.body)
	}
	for _, c := range []struct{ path, body string }{
		{"/v1/Accounts/acme/Calls/connect.json", connectForm("09000000002").Encode()},
		{"/v1/Accounts/acme/Sms/send.json", smsForm("09000000002").Encode()},
		{"/v1/Accounts/acme/Sms/bulksend.json", smsForm("09000000002,09000000003").Encode()},
	} {
		r := h.do(t, http.MethodPost, c.path, mustParse(t, c.body))
		if r.status != http.StatusTooManyRequests || !strings.Contains(r.body, "in progress") {
			t.Errorf("%s: got %d: %s", c.path, r.status, r.body)
		}
	}
	r := h.v2(t, http.MethodPost, "/v2/accounts/acme/calls", "application/json", `{"from":{"contact_uri":"1"},"to":{"contact_uri":"2"},"virtual_number":"3"}`)
	if r.status != http.StatusTooManyRequests {
		t.Errorf("v2: got %d: %s", r.status, r.body)
	}
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); !strings.Contains(r.body, `"Total":1`) {
		t.Errorf("refused calls were placed: %s", r.body)
	}
	h.sim.Close()
	if n := h.sim.pending.Load(); n != maxPending-1 {
		t.Errorf("pending %d after Close, want the %d stored by hand", n, maxPending-1)
	}
}

func mustParse(t *testing.T, s string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCallbacksRefuseOwnListeners: a StatusCallback at a listener
// RefuseCallbacksTo names (the gateway's API or admin listener) is not
// sent; other receivers still get theirs.
func TestCallbacksRefuseOwnListeners(t *testing.T) {
	var logs testutil.SyncBuffer
	own, other := newReceiver(t), newReceiver(t)
	_, port, _ := net.SplitHostPort(own.srv.Listener.Addr().String())
	h := newHarness(t, Config{Logger: zerolog.New(&logs)})
	h.sim.RefuseCallbacksTo(":" + port)
	for _, cb := range []string{own.srv.URL + "/v1/Accounts/acme/Calls/connect.json?From=1&To=2&CallerId=3", "http://127.0.0.1:" + port + "/-/refresh", other.srv.URL} {
		form := connectForm("09000000001")
		form.Set("StatusCallback", cb)
		if r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form); r.status != 200 {
			t.Fatalf("%s: got %d", cb, r.status)
		}
	}
	other.wait(t, 1)
	waitFor(t, "two refused callbacks", func() bool { return strings.Count(logs.String(), "own listeners") == 2 })
	if got := own.callbacks(); len(got) != 0 {
		t.Errorf("the refused listener got %v", got)
	}
}

func TestListensOn(t *testing.T) {
	for _, c := range []struct {
		listen, dialed string
		want           bool
	}{
		{"127.0.0.1:9901", "127.0.0.1:9901", true},
		{"127.0.0.1:9901", "127.0.0.1:9902", false},
		{"127.0.0.1:9901", "[::ffff:127.0.0.1]:9901", true},
		{"127.0.0.1:9901", "[::1]:9901", false},
		{":8080", "[::1]:8080", true},
		{"0.0.0.0:8080", "127.0.0.2:8080", true},
		{"[::]:8080", "127.0.0.1:8080", true},
		{":8080", "192.0.2.7:8080", false},
		{"localhost:9901", "127.0.0.1:9901", true},
		{"nonsense", "127.0.0.1:9901", false},
		{"127.0.0.1:9901", "0.0.0.0:9901", true},
		{"[::1]:9901", "[::]:9901", true},
		{"[::1]:9901", "0.0.0.0:9901", false},
	} {
		if got := listensOn(c.listen, netip.MustParseAddrPort(c.dialed)); got != c.want {
			t.Errorf("%s dialing %s: %v, want %v", c.listen, c.dialed, got, c.want)
		}
	}
}

// TestCallbacksRefuseOwnListenersAtUnspecified: a StatusCallback at
// 0.0.0.0 reaches a listener on 127.0.0.1 (the kernel sends it to
// loopback), so it is refused like one at 127.0.0.1.
func TestCallbacksRefuseOwnListenersAtUnspecified(t *testing.T) {
	var logs testutil.SyncBuffer
	own := newReceiver(t)
	_, port, _ := net.SplitHostPort(own.srv.Listener.Addr().String())
	h := newHarness(t, Config{Logger: zerolog.New(&logs)})
	h.sim.RefuseCallbacksTo(own.srv.Listener.Addr().String())
	form := connectForm("09000000001")
	form.Set("StatusCallback", "http://0.0.0.0:"+port+"/")
	if r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form); r.status != 200 {
		t.Fatalf("got %d", r.status)
	}
	waitFor(t, "the refused callback", func() bool { return strings.Contains(logs.String(), "own listeners") || len(own.callbacks()) > 0 })
	if got := own.callbacks(); len(got) != 0 {
		t.Errorf("the refused listener got %v", got)
	}
}
