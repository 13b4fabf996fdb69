// Package sandbox is an offline Exotel API simulator: an http.Handler that
// answers Exotel's v1, v2 and v3 API paths the way Exotel does, places
// simulated calls and SMS, and sends their status callbacks, with no
// network access beyond the callback URLs it is given.
//
// It checks HTTP Basic credentials per account (401 in the path's shape
// when they are wrong), answers in Exotel's shapes (v1 XML unless the path
// ends in .json, v1 JSON {"RestException":...}, the v2/v3 envelope), and
// enforces Exotel's per-account rate limit per API family (Config.Limit
// per Config.Period, 429 in the path's shape; requests with wrong
// credentials do not count).
//
// # Endpoints
//
//   - POST /v1/Accounts/{sid}/Calls/connect[.json]: From, To and CallerId
//     are required (400 otherwise); answers the Call resource with Status
//     "in-progress", then after Config.Ring the call ends by the outcome
//     rule below and its StatusCallback is sent.
//   - GET /v1/Accounts/{sid}/Calls/{CallSid}[.json] (404 for an unknown
//     Sid) and GET /v1/Accounts/{sid}/Calls[.json], filtered by Sid (a
//     comma-separated list of at most 100), DateCreated ("gte:…;lte:…"),
//     To and From, paged by PageSize (default 50, at most 100) and Page
//     (from 0, at most 1,000,000).
//   - POST /v1/Accounts/{sid}/Sms/send[.json]: From, To and Body are
//     required; answers the SMSMessage with Status "queued", then after
//     Config.Ring the SMS is delivered by the rule below and its
//     StatusCallback is sent. GET /v1/Accounts/{sid}/SMS/Messages/{SmsSid}
//     (Sms or SMS) answers it. POST /v1/Accounts/{sid}/Sms/bulksend[.json]
//     sends one to each of up to 100 numbers in To (a comma-separated
//     list, or repeated To or To[] fields) and answers a list of
//     SMSMessage.
//   - POST /v2/accounts/{sid}/calls (JSON: from.contact_uri,
//     to.contact_uri and virtual_number required) and
//     GET /v2/accounts/{sid}/calls[/{id}] in the v2 envelope; the v2 calls
//     are the same calls the v1 paths see. They end by the same rule but
//     send no status callback.
//   - A body larger than 1 MiB is answered 413, and is not recorded.
//   - Every other path the gateway routes answers 404 in its shape, with a
//     message saying the sandbox does not simulate it. (With
//     Config.Lenient, 200: a v2/v3 success envelope with empty data, {}
//     for v1 JSON and v2_beta, or an empty <TwilioResponse> for v1 XML.)
//   - An SMSMessage's Uri is its SMS/Messages/{SmsSid} path, which answers
//     it.
//
// # Outcome rule
//
// A call's outcome is decided by the last digit of its To number (a number
// without a digit counts as 0):
//
//	0-4  completed, answered, 30 s conversation
//	5    busy
//	6    no-answer
//	7    failed
//	8    canceled
//	9    completed, answered, 300 s conversation
//
// Time is compressed: every call ends when its ring (Config.Ring) ends,
// and its EndTime is that moment, never ahead of the clock; Duration and
// ConversationDuration report the conversation above.
//
// A completed call costs 0.50 per started minute. An SMS's delivery is
// decided the same way: 5 is failed-dnd (FAILED_DND, 23005), 7 is failed
// (FAILED_SUBSCRIBER_UNAVAILABLE, 23035), any other digit is sent
// (DELIVERED_TO_HANDSET, 20005).
//
// # Callbacks
//
// A call's StatusCallback is POSTed as multipart/form-data, or as JSON when
// the call was placed with StatusCallbackContentType=application/json. It
// always holds CallSid, Status, RecordingUrl and DateUpdated; when the call
// asked for StatusCallbackEvents[] (terminal, answered) each event also
// holds EventType, DateCreated, To, From, PhoneNumberSid, StartTime,
// EndTime, ConversationDuration, Direction, CustomField and Legs, and an
// answered call sends its answered event before its terminal one. An SMS's
// StatusCallback is form-urlencoded: SmsSid, To, Status, SmsUnits,
// DetailedStatus, DetailedStatusCode, DateSent, CustomField. Callbacks are
// sent once, without retries, at most 8 at a time; a StatusCallback that
// is not an absolute http or https URL is answered 400, and the default
// client does not connect to link-local addresses (cloud metadata
// services) nor to the listeners RefuseCallbacksTo names. At most 20,000 calls and SMS wait to end at once: past that,
// new ones are answered 429. Times are Indian Standard Time, formatted
// "2006-01-02 15:04:05", as Exotel's are.
//
// # Determinism
//
// Sids come from a PRNG seeded with Config.Seed, and outcomes from the To
// numbers, so the same seed and the same sequence of requests give the same
// Sids and outcomes. Faults with a ratio draw from their own PRNG, seeded
// from the same seed, so they do not shift the Sids.
//
// # Faults and recorded requests
//
// AdminHandler serves /sandbox/faults (inject 5xx or 429 answers, latency,
// or dropped connections) and /sandbox/requests (the requests received,
// with credentials masked). The Set* methods and Requests are hooks for Go
// tests.
package sandbox

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exogate/exogate/internal/exotel"
	"github.com/rs/zerolog"
)

// Caps on what a Simulator keeps, so its memory stays bounded: past them
// the oldest are forgotten.
const (
	maxRequests = 10000
	maxCalls    = 10000
	maxSMS      = 10000
	// maxRecordedBytes caps the recorded requests' bodies and headers in
	// all.
	maxRecordedBytes = 64 << 20
	// maxPending caps the calls and SMS waiting to end.
	maxPending = maxCalls + maxSMS
)

// maxBody is the largest API request body the simulator reads, as the
// gateway's default max_body.
const maxBody = 1 << 20

// maxCallbacksInFlight caps the status callbacks sent at once.
const maxCallbacksInFlight = 8

// Account is an account the simulator knows, with the API key and token
// it accepts (more pairs with AllowAlso).
type Account struct{ SID, Key, Token string }

// Config configures a Simulator. Every zero field means its documented
// default.
type Config struct {
	// Accounts are the accounts the simulator accepts.
	Accounts []Account
	// Seed seeds the PRNG Sids are drawn from: the same seed and the same
	// sequence of requests give the same Sids and outcomes.
	Seed int64
	// Limit is how many requests an account may make per Period in each
	// rate-limit bucket (voice_v1, voice_v2, sms, whatsapp, other); over
	// it the simulator answers 429. Zero means no limit.
	Limit int
	// Period is the sliding window Limit counts over. Zero means a minute.
	Period time.Duration
	// Ring is how long a simulated call rings, or an SMS is in flight,
	// before it ends and its status callback is sent. Zero means 2s.
	Ring time.Duration
	// Client sends the status callbacks. Nil means a client with a 10s
	// timeout and no proxy that refuses link-local addresses (cloud
	// metadata services) and the listeners RefuseCallbacksTo names.
	Client *http.Client
	// CallbackRoots, if set, are the certificate authorities the default
	// callback client trusts for https callbacks (the system's otherwise).
	CallbackRoots *x509.CertPool
	// Logger receives callback failures and injected faults.
	Logger zerolog.Logger
	// Name labels the requests the simulator records (e.g. "singapore-api").
	Name string
	// Lenient makes the simulator answer requests Exotel would refuse for
	// their content (a required field missing, a body it cannot parse, a
	// v2 body that is not JSON, an unknown Sid) as if they were valid,
	// with what it can make of them: an unknown Sid is answered as a
	// completed call or a sent SMS. Credentials, shapes, limits and faults
	// apply as ever. It suits tests of a gateway that forwards bodies it
	// does not read; false (the default) is Exotel's behaviour.
	Lenient bool
}

// Request is one API request as the simulator received it.
type Request struct {
	Method     string
	RequestURI string // exactly as on the wire
	Host       string
	Header     http.Header
	Body       []byte
	Server     string    // the Config.Name of the simulator that received it
	At         time.Time // when its headers arrived
}

// Simulator is an http.Handler that behaves like Exotel's API. Create it
// with New; stop its pending callbacks with Close. Safe for concurrent use.
type Simulator struct {
	name   string
	limit  int
	period time.Duration
	ring   time.Duration
	strict bool
	client *http.Client
	log    zerolog.Logger
	now    func() time.Time

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu            sync.Mutex
	closed        bool
	accounts      map[string][]Account // every pair each account accepts
	sids          *rand.Rand           // draws Sids and request IDs
	faultRand     *rand.Rand           // draws the faults' ratios
	store         store
	buckets       map[bucketKey][]time.Time // admitted requests per account and bucket
	faults        []*fault
	faultSeq      int
	requests      []Request
	recordedBytes int // recordedSize of requests
	override      func(Request) (status int, body string, ok bool)
	headers       http.Header
	testLimit     int           // SetLimit's limit (0 = none) ...
	window        time.Duration // ... over this sliding window
	admitted      []time.Time   // arrival times of the requests within it
	excess        atomic.Int64
	count         atomic.Int64
	aborted       atomic.Int64

	pending          atomic.Int64  // calls and SMS waiting to end
	callbacksWaiting atomic.Int64  // callbacks waiting for a slot
	slots            chan struct{} // one per callback being sent
	refused          []string      // listeners callbacks must not reach
}

type bucketKey struct {
	account string
	bucket  exotel.Bucket
}

// New returns a simulator for cfg.
func New(cfg Config) *Simulator {
	s := &Simulator{
		name:      cfg.Name,
		limit:     cfg.Limit,
		period:    cfg.Period,
		ring:      cfg.Ring,
		strict:    !cfg.Lenient,
		client:    cfg.Client,
		log:       cfg.Logger,
		now:       time.Now,
		accounts:  map[string][]Account{},
		sids:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5a1d5)),
		faultRand: rand.New(rand.NewPCG(uint64(cfg.Seed), 0xfa17)),
		store:     newStore(),
		buckets:   map[bucketKey][]time.Time{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.period <= 0 {
		s.period = time.Minute
	}
	if s.ring <= 0 {
		s.ring = 2 * time.Second
	}
	if s.client == nil {
		s.client = s.callbackClient(cfg.CallbackRoots)
	}
	s.slots = make(chan struct{}, maxCallbacksInFlight)
	for _, a := range cfg.Accounts {
		s.accounts[strings.ToLower(a.SID)] = []Account{a}
	}
	return s
}

// Close stops the pending callbacks and waits for every goroutine the
// simulator started. Calls and SMS placed after Close send no callback.
func (s *Simulator) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// SetAccount adds an account, or replaces every key and token it accepts
// with a's.
func (s *Simulator) SetAccount(a Account) {
	s.mu.Lock()
	s.accounts[strings.ToLower(a.SID)] = []Account{a}
	s.mu.Unlock()
}

// AllowAlso makes the account accept a's key and token as well as those it
// already does, as Exotel does for each API key an account has until it is
// deleted in the dashboard.
func (s *Simulator) AllowAlso(a Account) {
	s.mu.Lock()
	sid := strings.ToLower(a.SID)
	s.accounts[sid] = append(s.accounts[sid], a)
	s.mu.Unlock()
}

// accepts reports whether the account accepts key and token.
func (s *Simulator) accepts(sid, key, token string) bool {
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
// normal behaviour (to inject 5xx, 429 ...); ok false falls through. An
// empty body is replaced by an error in the path's shape.
func (s *Simulator) SetOverride(f func(Request) (status int, body string, ok bool)) {
	s.mu.Lock()
	s.override = f
	s.mu.Unlock()
}

// SetLimit makes the simulator enforce a limit over every request it
// receives, whatever the account: a request that would make more than n
// arrive within any sliding window is answered 429 and counted as excess.
// n 0 removes it. It is on top of Config.Limit.
func (s *Simulator) SetLimit(n int, window time.Duration) {
	s.mu.Lock()
	s.testLimit, s.window, s.admitted = n, window, nil
	s.mu.Unlock()
}

// Excess returns how many requests arrived over the limit set by SetLimit.
func (s *Simulator) Excess() int64 { return s.excess.Load() }

// SetHeader adds a header to every answer (empty value: remove it), e.g.
// Retry-After on injected 429s.
func (s *Simulator) SetHeader(name, value string) {
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

// Requests returns a copy of the requests received so far (the latest
// 10,000, and as many of the latest as hold 64 MiB of bodies and headers).
func (s *Simulator) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many requests were received.
func (s *Simulator) Count() int64 { return s.count.Load() }

// Aborted returns how many requests arrived with a body cut off mid-way.
func (s *Simulator) Aborted() int64 { return s.aborted.Load() }

// MaxInWindow returns the most requests received within any window of the
// given length (both ends included).
func (s *Simulator) MaxInWindow(window time.Duration) int {
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

// Reset forgets the recorded requests and zeroes the counters; calls, SMS,
// faults and limits are kept.
func (s *Simulator) Reset() {
	s.mu.Lock()
	s.requests, s.recordedBytes = nil, 0
	s.admitted = nil
	s.count.Store(0)
	s.aborted.Store(0)
	s.excess.Store(0)
	s.mu.Unlock()
}

// ServeHTTP answers one Exotel API request.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := s.now()
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	uri = maskUserinfo(uri)
	x := &exchange{s: s, w: w, r: r}
	x.path, x.query, _ = strings.Cut(uri, "?")
	x.route, x.routeErr = exotel.Classify(r.Method, x.path)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		x.fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body is larger than %d bytes", maxBody))
		return
	}
	if err != nil {
		// A body cut off mid-way (a chunked upload aborted by the sender) is
		// not a request Exotel acts on.
		s.aborted.Add(1)
		return
	}
	req := Request{Method: r.Method, RequestURI: uri, Host: r.Host, Header: r.Header.Clone(), Body: body, Server: s.name, At: at}
	x.req, x.body = req, body
	override, over := s.admit(req, w)
	if over {
		s.excess.Add(1)
		x.fail(http.StatusTooManyRequests, "Too Many Requests")
		return
	}
	if override != nil {
		if status, b, ok := override(req); ok {
			if b == "" {
				x.fail(status, http.StatusText(status))
				return
			}
			x.write(status, b)
			return
		}
	}
	if s.injectFault(x) {
		return
	}
	x.serve()
}

// recordedSize is about how many bytes a recorded request holds: its
// body, request line and headers.
func recordedSize(req Request) int {
	n := len(req.Body) + len(req.RequestURI) + len(req.Host)
	for k, vals := range req.Header {
		n += len(k)
		for _, v := range vals {
			n += len(v)
		}
	}
	return n
}

// maskUserinfo replaces the user and password of a request line in
// absolute or authority form (http://key:token@host/…, key:token@host:443)
// with "***", so the recorded requests and the logs never hold them.
func maskUserinfo(uri string) string {
	if strings.HasPrefix(uri, "/") {
		return uri
	}
	prefix, rest := "", uri
	if i := strings.Index(uri, "://"); i >= 0 {
		prefix, rest = uri[:i+3], uri[i+3:]
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return uri
	}
	return prefix + "***" + rest[at:]
}

// admit records the request, copies the extra headers onto the answer and
// applies SetLimit's limit: over reports a request over it.
func (s *Simulator) admit(req Request, w http.ResponseWriter) (override func(Request) (int, string, bool), over bool) {
	s.count.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	s.recordedBytes += recordedSize(req)
	for len(s.requests) > maxRequests || s.recordedBytes > maxRecordedBytes {
		// Reslicing keeps this O(1); append copies only the kept ones
		// when it next grows the array.
		s.recordedBytes -= recordedSize(s.requests[0])
		s.requests[0] = Request{}
		s.requests = s.requests[1:]
	}
	for k, v := range s.headers {
		w.Header()[k] = v
	}
	if s.testLimit > 0 {
		cut := 0
		for cut < len(s.admitted) && req.At.Sub(s.admitted[cut]) > s.window {
			cut++
		}
		s.admitted = s.admitted[cut:]
		if len(s.admitted) >= s.testLimit {
			return s.override, true
		}
		s.admitted = append(s.admitted, req.At)
	}
	return s.override, false
}

// allow counts a request against its account's bucket and reports whether
// it is within Config.Limit.
func (s *Simulator) allow(route exotel.Route, at time.Time) bool {
	if s.limit <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := bucketKey{route.Account, route.Bucket}
	times := s.buckets[k]
	cut := 0
	for cut < len(times) && at.Sub(times[cut]) >= s.period {
		cut++
	}
	times = times[cut:]
	if len(times) >= s.limit {
		s.buckets[k] = times
		return false
	}
	s.buckets[k] = append(times, at)
	return true
}

// newSid draws a fresh 32-hex-digit Sid.
func (s *Simulator) newSid() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return hex128(s.sids)
}

func hex128(r *rand.Rand) string {
	const digits = "0123456789abcdef"
	var b [32]byte
	for i := 0; i < 2; i++ {
		v := r.Uint64()
		for j := 0; j < 16; j++ {
			b[i*16+j] = digits[v&0xf]
			v >>= 4
		}
	}
	return string(b[:])
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

// goAfterRing runs f after Config.Ring in a goroutine Close waits for,
// unless the simulator is closed first.
// It spends a slot reserve took.
func (s *Simulator) goAfterRing(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.pending.Add(-1)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.pending.Add(-1)
		t := time.NewTimer(s.ring)
		defer t.Stop()
		select {
		case <-t.C:
			f()
		case <-s.ctx.Done():
		}
	}()
}

// reserve takes n of the maxPending slots for calls and SMS waiting to
// end, and reports whether there were enough; goAfterRing spends them.
func (s *Simulator) reserve(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending.Load()+int64(n) > maxPending {
		return false
	}
	s.pending.Add(int64(n))
	return true
}
