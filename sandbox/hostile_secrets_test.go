package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/exogate/exogate/internal/testutil"
	"github.com/rs/zerolog"
)

// TestRequestsHideURLCredentials: a request line in absolute form with a key
// and token in its userinfo shows neither the token in /sandbox/requests nor
// in the logs.
func TestRequestsHideURLCredentials(t *testing.T) {
	var logs testutil.SyncBuffer
	h := newHarness(t, Config{Logger: zerolog.New(&logs).Level(zerolog.DebugLevel)})
	h.addFault(t, `{"status":503,"count":1}`)
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET http://acmekey:acmetoken@%s/v1/Accounts/acme/Calls.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", h.srv.Listener.Addr())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r := h.admin(t, http.MethodGet, "/sandbox/requests", "")
	if !strings.Contains(r.body, "Calls.json") || strings.Contains(r.body, "acmetoken") {
		t.Errorf("requests: %s", r.body)
	}
	if strings.Contains(logs.String(), "acmetoken") {
		t.Errorf("logs: %s", logs.String())
	}
	if reqs := h.sim.Requests(); len(reqs) != 1 || strings.Contains(reqs[0].RequestURI, "acmetoken") {
		t.Errorf("recorded %v", reqs)
	}
}

// TestMaskHeaderAnyCase: credentials are masked whatever the header name's
// case (a handler called directly need not canonicalize it).
func TestMaskHeaderAnyCase(t *testing.T) {
	m := maskHeader(http.Header{"authorization": {"Basic c2VjcmV0"}, "proxy-authorization": {"tok"}, "COOKIE": {"s=1"}})
	if m["authorization"][0] != "Basic ***" || m["proxy-authorization"][0] != "***" || m["COOKIE"][0] != "***" {
		t.Errorf("masked %v", m)
	}
}

func TestMaskUserinfo(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/Accounts/acme/Calls.json?x=1":                 "/v1/Accounts/acme/Calls.json?x=1",
		"http://key:tok@h/v1/Accounts/acme/Calls.json?x=1": "http://***@h/v1/Accounts/acme/Calls.json?x=1",
		"https://tok@h:443/p":                              "https://***@h:443/p",
		"key:tok@h:443":                                    "***@h:443",
		"tok@h:443":                                        "***@h:443",
		"http://h/p?a=b@c":                                 "http://h/p?a=b@c",
		"http://h/p":                                       "http://h/p",
		"*":                                                "*",
	} {
		if got := maskUserinfo(in); got != want || strings.Contains(got, "tok") {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}
