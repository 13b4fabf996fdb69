package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/testutil"
)

var (
	acme = Account{SID: "acme", Key: "acmekey", Token: "acmetoken"}
	bolt = Account{SID: "bolt1m", Key: "boltkey", Token: "bolttoken"}
)

// within bounds every wait for background work in these tests.
const within = 10 * time.Second

// harness is a simulator behind a test server on 127.0.0.1.
type harness struct {
	sim *Simulator
	srv *httptest.Server
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	if cfg.Accounts == nil {
		cfg.Accounts = []Account{acme, bolt}
	}
	if cfg.Ring == 0 {
		cfg.Ring = 10 * time.Millisecond
	}
	sim := New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		srv.Close()
		sim.Close()
	})
	return &harness{sim: sim, srv: srv}
}

// reply is an answer read in full.
type reply struct {
	status      int
	contentType string
	body        string
	header      http.Header
}

// do sends a request with acme's credentials; body form values are sent
// form-urlencoded.
func (h *harness) do(t *testing.T, method, path string, form url.Values) reply {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.SetBasicAuth(acme.Key, acme.Token)
	return h.send(t, req)
}

func (h *harness) send(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(b), header: resp.Header}
}

// decode unmarshals a JSON answer.
func decode(t *testing.T, r reply) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v\n%s", r.status, err, r.body)
	}
	return m
}

// obj walks a decoded JSON value by keys.
func obj(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("no object at %q in %v", k, v)
		}
		v = m[k]
	}
	return v
}

// callback is a status callback a receiver got.
type callback struct {
	contentType string
	fields      url.Values     // form-urlencoded and multipart bodies
	json        map[string]any // JSON bodies
}

// receiver is a callback receiver on 127.0.0.1.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []callback
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		cb := callback{contentType: r.Header.Get("Content-Type")}
		mt, mp, _ := mime.ParseMediaType(cb.contentType)
		switch mt {
		case "multipart/form-data":
			form, err := multipart.NewReader(bytes.NewReader(b), mp["boundary"]).ReadForm(1 << 20)
			if err == nil {
				cb.fields = url.Values(form.Value)
			}
		case "application/json":
			_ = json.Unmarshal(b, &cb.json)
		default:
			cb.fields, _ = url.ParseQuery(string(b))
		}
		rc.mu.Lock()
		rc.got = append(rc.got, cb)
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) callbacks() []callback {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]callback(nil), rc.got...)
}

// wait waits for n callbacks and returns them.
func (rc *receiver) wait(t *testing.T, n int) []callback {
	t.Helper()
	testutil.Eventually(t, within, "status callbacks", func() bool { return len(rc.callbacks()) >= n })
	return rc.callbacks()
}

// connectForm is a valid Calls/connect form to the number to.
func connectForm(to string) url.Values {
	return url.Values{"From": {"09876543210"}, "To": {to}, "CallerId": {"08047112233"}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, within, what, cond)
}
