// Package fakeexotel is a stand-in for one Exotel API host, for tests and
// benchmarks. It checks HTTP Basic credentials per account the way Exotel
// does, answers in Exotel's shapes (v1 XML or JSON, v2/v3 envelope), and
// records every request it received so a test can assert on exactly what
// the gateway sent.
package fakeexotel

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one request as the fake received it.
type Request struct {
	Method     string
	RequestURI string // exactly as on the wire
	Host       string
	Header     http.Header
	Body       []byte
	Server     string    // the Name of the fake that received it
	At         time.Time // when its headers arrived
}

// Account is an account the fake knows, with the key and token it accepts.
type Account struct {
	SID, Key, Token string
}

// Server is an http.Handler that behaves like one Exotel host. Set the
// fields before serving; Override may be swapped with SetOverride while
// serving. Safe for concurrent use.
type Server struct {
	// Name labels the requests this fake records (e.g. "singapore-api").
	Name string

	mu       sync.Mutex
	accounts map[string][]Account // every pair each account accepts
	requests []Request
	override func(Request) (status int, body string, ok bool)
	headers  http.Header   // added to every answer
	limit    int           // Exotel's own rate limit (0 = none) ...
	window   time.Duration // ... over this sliding window
	admitted []time.Time   // arrival times of the requests within the limit
	excess   atomic.Int64  // requests over the limit, answered 429
	count    atomic.Int64
	aborted  atomic.Int64
}

// New returns a fake host that accepts the given accounts.
func New(name string, accounts ...Account) *Server {
	s := &Server{Name: name, accounts: map[string][]Account{}}
	for _, a := range accounts {
		s.accounts[strings.ToLower(a.SID)] = []Account{a}
	}
	return s
}

// SetAccount adds an account, or replaces every key and token it accepts
// with a's.
func (s *Server) SetAccount(a Account) {
	s.mu.Lock()
	s.accounts[strings.ToLower(a.SID)] = []Account{a}
	s.mu.Unlock()
}

// AllowAlso makes the account accept a's key and token as well as those it
// already does, as Exotel does for each API key an account has until it is
// deleted in the dashboard.
func (s *Server) AllowAlso(a Account) {
	s.mu.Lock()
	sid := strings.ToLower(a.SID)
	s.accounts[sid] = append(s.accounts[sid], a)
	s.mu.Unlock()
}

// accepts reports whether the account accepts key and token.
func (s *Server) accepts(sid, key, token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts[strings.ToLower(sid)] {
		if key == a.Key && token == a.Token {
			return true
		}
	}
	return false
}

// SetOverride installs a function that may answer a request in place of the
// normal behaviour (to inject 5xx, 429 ...); ok false falls through.
func (s *Server) SetOverride(f func(Request) (status int, body string, ok bool)) {
	s.mu.Lock()
	s.override = f
	s.mu.Unlock()
}

// SetLimit makes the fake enforce Exotel's rate limit itself: a request
// that would make more than n arrive within any sliding window is answered
// 429 and counted as excess.
func (s *Server) SetLimit(n int, window time.Duration) {
	s.mu.Lock()
	s.limit, s.window, s.admitted = n, window, nil
	s.mu.Unlock()
}

// Excess returns how many requests arrived over the limit set by SetLimit.
func (s *Server) Excess() int64 { return s.excess.Load() }

// SetHeader adds a header to every answer (empty value: remove it), e.g.
// Retry-After on injected 429s.
func (s *Server) SetHeader(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headers == nil {
		s.headers = http.Header{}
	}
	if value == "" {
		s.headers.Del(name)
	} else {
		s.headers.Set(name, value)
	}
}

// Requests returns a copy of every request received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many requests were received.
func (s *Server) Count() int64 { return s.count.Load() }

// Aborted returns how many requests arrived with a body cut off mid-way.
func (s *Server) Aborted() int64 { return s.aborted.Load() }

// MaxInWindow returns the most requests received within any window of the
// given length (both ends included).
func (s *Server) MaxInWindow(window time.Duration) int {
	reqs := s.Requests()
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].At.Before(reqs[j].At) })
	best, j := 0, 0
	for i := range reqs {
		for reqs[i].At.Sub(reqs[j].At) > window {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// Reset forgets the recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
	s.count.Store(0)
	s.aborted.Store(0)
	s.excess.Store(0)
	s.mu.Lock()
	s.admitted = nil
	s.mu.Unlock()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		// A body cut off mid-way (a chunked upload aborted by the sender) is
		// not a request Exotel acts on.
		s.aborted.Add(1)
		return
	}
	req := Request{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: body, Server: s.Name, At: at}
	s.count.Add(1)
	s.mu.Lock()
	s.requests = append(s.requests, req)
	override := s.override
	for k, v := range s.headers {
		w.Header()[k] = v
	}
	over := false
	if s.limit > 0 {
		cut := 0
		for cut < len(s.admitted) && at.Sub(s.admitted[cut]) > s.window {
			cut++
		}
		s.admitted = s.admitted[cut:]
		if len(s.admitted) >= s.limit {
			over = true
		} else {
			s.admitted = append(s.admitted, at)
		}
	}
	s.mu.Unlock()
	if over {
		s.excess.Add(1)
		path, _, _ := strings.Cut(r.RequestURI, "?")
		sh := shapeOf(path)
		write(w, sh, http.StatusTooManyRequests, errorBody(sh, http.StatusTooManyRequests, "Too Many Requests"))
		return
	}

	path, _, _ := strings.Cut(r.RequestURI, "?")
	shape := shapeOf(path)
	if override != nil {
		if status, b, ok := override(req); ok {
			if b == "" {
				b = errorBody(shape, status, http.StatusText(status))
			}
			write(w, shape, status, b)
			return
		}
	}

	key, token, ok := basicAuth(r.Header.Values("Authorization"))
	if !ok || !s.accepts(accountOf(path), key, token) {
		// Exotel answers a wrong key, token or region with 401.
		write(w, shape, http.StatusUnauthorized, errorBody(shape, http.StatusUnauthorized, "Authentication failed. Check your API key and token."))
		return
	}
	write(w, shape, http.StatusOK, successBody(shape, path, r.Method))
}

// basicAuth decodes exactly one Basic Authorization header.
func basicAuth(values []string) (key, token string, ok bool) {
	if len(values) != 1 || !strings.HasPrefix(values[0], "Basic ") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(values[0][len("Basic "):])
	if err != nil {
		return "", "", false
	}
	key, token, ok = strings.Cut(string(raw), ":")
	return key, token, ok
}

type shape int

const (
	shapeJSON shape = iota
	shapeXML
	shapeV2
)

func shapeOf(path string) shape {
	lower := strings.ToLower(path)
	switch {
	case strings.HasPrefix(lower, "/v2/"), strings.HasPrefix(lower, "/v3/"):
		return shapeV2
	case strings.HasPrefix(lower, "/v1/") && !strings.HasSuffix(lower, ".json"):
		return shapeXML
	}
	return shapeJSON
}

// accountOf returns the segment after "Accounts"/"accounts".
func accountOf(path string) string {
	var segs []string
	for _, s := range strings.Split(path, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	for i := 0; i+1 < len(segs); i++ {
		if strings.EqualFold(segs[i], "accounts") {
			return strings.TrimSuffix(segs[i+1], ".json")
		}
	}
	return ""
}

func write(w http.ResponseWriter, sh shape, status int, body string) {
	ct := "application/json"
	if sh == shapeXML {
		ct = "application/xml"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func errorBody(sh shape, status int, msg string) string {
	switch sh {
	case shapeXML:
		var b bytes.Buffer
		fmt.Fprintf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TwilioResponse><RestException><Status>%d</Status><Message>%s</Message></RestException></TwilioResponse>", status, msg)
		return b.String()
	case shapeV2:
		code := status
		switch status {
		case 401:
			code = 1010
		case 404:
			code = 1000
		case 429:
			code = 10724
		}
		return fmt.Sprintf(`{"request_id":"fake","method":"GET","http_code":%d,"response":{"code":%d,"error_data":{"code":%d,"message":%q,"description":%q},"status":"failure","data":null}}`, status, status, code, msg, msg)
	}
	return fmt.Sprintf(`{"RestException":{"Status":%d,"Message":%q}}`, status, msg)
}

func successBody(sh shape, path, method string) string {
	lower := strings.ToLower(path)
	switch {
	case sh == shapeV2:
		return `{"request_id":"fake","method":"` + method + `","http_code":200,"response":{"code":200,"error_data":null,"status":"success","data":{}}}`
	case sh == shapeXML && strings.Contains(lower, "/sms/"):
		return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TwilioResponse><SMSMessage><Sid>fake</Sid><Status>queued</Status></SMSMessage></TwilioResponse>"
	case sh == shapeXML:
		return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TwilioResponse><Call><Sid>fake</Sid><Status>in-progress</Status></Call></TwilioResponse>"
	case strings.Contains(lower, "/sms/"):
		return `{"SMSMessage":{"Sid":"fake","Status":"queued"}}`
	case strings.HasSuffix(lower, "/calls.json") && method == http.MethodGet:
		return `{"Metadata":{"Total":0,"PageSize":50},"Calls":[]}`
	}
	return `{"Call":{"Sid":"fake","Status":"in-progress"}}`
}
