package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// maxLatency is the longest latency a fault may add.
const maxLatency = 5 * time.Minute

// maxFaults caps the faults in force.
const maxFaults = 100

// fault is one injected fault, as /sandbox/faults lists it.
type fault struct {
	ID     int  `json:"id"`
	Status int  `json:"status,omitempty"` // answered in place of the request
	Drop   bool `json:"drop,omitempty"`   // the connection is closed without an answer
	// LoseAnswer carries the request out, then closes the connection
	// without the answer.
	LoseAnswer bool    `json:"lose_answer,omitempty"`
	Latency    string  `json:"latency,omitempty"` // added before the answer
	Count      int     `json:"count,omitempty"`   // requests left to affect; 0 is every one
	Ratio      float64 `json:"ratio,omitempty"`   // the share of requests affected; 0 is all

	latency time.Duration
}

// faultSpec is the body of POST /sandbox/faults.
type faultSpec struct {
	Status     int     `json:"status"`
	Drop       bool    `json:"drop"`
	LoseAnswer bool    `json:"lose_answer"`
	Latency    string  `json:"latency"`
	Count      int     `json:"count"`
	Ratio      float64 `json:"ratio"`
}

// newFault checks a faultSpec.
func newFault(spec faultSpec) (*fault, error) {
	f := &fault{Status: spec.Status, Drop: spec.Drop, LoseAnswer: spec.LoseAnswer, Latency: spec.Latency, Count: spec.Count, Ratio: spec.Ratio}
	answers := 0
	for _, set := range []bool{spec.Status != 0, spec.Drop, spec.LoseAnswer} {
		if set {
			answers++
		}
	}
	switch {
	case answers == 0 && spec.Latency == "":
		return nil, errors.New("a fault needs status, drop, lose_answer or latency")
	case spec.Status != 0 && (spec.Status < 400 || spec.Status > 599):
		return nil, errors.New("status must be from 400 to 599")
	case answers > 1:
		return nil, errors.New("a fault answers a status, drops the connection or loses the answer: one of them")
	case spec.Count < 0:
		return nil, errors.New("count must not be negative")
	case spec.Ratio < 0 || spec.Ratio > 1:
		return nil, errors.New("ratio must be from 0 to 1")
	}
	if spec.Latency != "" {
		d, err := time.ParseDuration(spec.Latency)
		if err != nil || d <= 0 || d > maxLatency {
			return nil, fmt.Errorf("latency must be a duration such as \"200ms\", above 0 and at most %v", maxLatency)
		}
		f.latency = d
	}
	return f, nil
}

// AdminHandler returns the handler for the simulator's controls, to mount
// on an admin listener:
//
//   - POST /sandbox/faults adds a fault, from a JSON object: "status" (400
//     to 599) answers that status in the path's shape in place of the
//     request, "drop" true reads the request and closes the connection
//     without an answer, "lose_answer" true carries the request out and
//     then closes the connection without the answer (the outcome the
//     caller cannot know), "latency" (such as "200ms") delays the answer;
//     "count" limits it to the next N requests it affects (0: every one)
//     and "ratio" to that share of requests (drawn from the seeded PRNG;
//     0: all). It answers 201 with the fault and its id.
//   - GET /sandbox/faults lists the faults in force; DELETE clears them.
//   - GET /sandbox/requests lists the API requests received (the latest
//     10,000, within 64 MiB of bodies and headers), with Authorization masked and
//     bodies as text; DELETE forgets them.
//
// Faults apply to API requests before their credentials are checked, in
// the order they were added: every
// selected latency adds up (to at most 5 minutes), and the first selected
// status or drop is the answer. At most 100 faults are in force at once.
// Bad input is answered 400 with {"error":"…"}.
func (s *Simulator) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimSuffix(r.URL.Path, "/") {
		case "/sandbox/faults":
			s.serveFaults(w, r)
		case "/sandbox/requests":
			s.serveRequests(w, r)
		default:
			adminError(w, http.StatusNotFound, "not found: the sandbox serves /sandbox/faults and /sandbox/requests")
		}
	})
}

func (s *Simulator) serveFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.mu.Lock()
		list := make([]fault, 0, len(s.faults))
		for _, f := range s.faults {
			list = append(list, *f)
		}
		s.mu.Unlock()
		adminJSON(w, http.StatusOK, list)
	case http.MethodPost:
		var spec faultSpec
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				adminError(w, http.StatusRequestEntityTooLarge, "a fault is a JSON object of at most 64 KiB")
				return
			}
			adminError(w, http.StatusBadRequest, "a fault is a JSON object with status, drop, lose_answer, latency, count, ratio: "+err.Error())
			return
		}
		if dec.Decode(&struct{}{}) != io.EOF {
			adminError(w, http.StatusBadRequest, "a fault is one JSON object")
			return
		}
		f, err := newFault(spec)
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.mu.Lock()
		if len(s.faults) >= maxFaults {
			s.mu.Unlock()
			adminError(w, http.StatusBadRequest, fmt.Sprintf("at most %d faults are in force: DELETE /sandbox/faults clears them", maxFaults))
			return
		}
		s.faultSeq++
		f.ID = s.faultSeq
		s.faults = append(s.faults, f)
		out := *f
		s.mu.Unlock()
		adminJSON(w, http.StatusCreated, out)
	case http.MethodDelete:
		s.mu.Lock()
		s.faults = nil
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, DELETE")
		adminError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// recorded is a request as /sandbox/requests lists it.
type recorded struct {
	Server     string              `json:"server,omitempty"`
	Method     string              `json:"method"`
	RequestURI string              `json:"request_uri"`
	Host       string              `json:"host"`
	Header     map[string][]string `json:"header"`
	Body       string              `json:"body"`
	At         time.Time           `json:"at"`
}

func (s *Simulator) serveRequests(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		reqs := s.Requests()
		out := make([]recorded, 0, len(reqs))
		for _, req := range reqs {
			out = append(out, recorded{
				Server: req.Server, Method: req.Method, RequestURI: req.RequestURI, Host: req.Host,
				Header: maskHeader(req.Header), Body: string(req.Body), At: req.At,
			})
		}
		adminJSON(w, http.StatusOK, out)
	case http.MethodDelete:
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, HEAD, DELETE")
		adminError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// maskHeader copies h with the credentials replaced: "Basic ***", whatever
// the case of the header's name.
func maskHeader(h http.Header) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, vals := range h {
		masked := append([]string(nil), vals...)
		if strings.EqualFold(k, "Authorization") || strings.EqualFold(k, "Proxy-Authorization") || strings.EqualFold(k, "Cookie") {
			for i, v := range masked {
				scheme, _, ok := strings.Cut(v, " ")
				if ok && scheme != "" {
					masked[i] = scheme + " ***"
				} else {
					masked[i] = "***"
				}
			}
		}
		out[k] = masked
	}
	return out
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func adminError(w http.ResponseWriter, status int, msg string) {
	adminJSON(w, status, map[string]string{"error": msg})
}

// injectFault applies the faults to an API request, and reports whether
// one answered it.
func (s *Simulator) injectFault(x *exchange) bool {
	delay, action := s.pickFaults()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-x.r.Context().Done():
		case <-s.ctx.Done():
		}
		t.Stop()
	}
	switch {
	case action == nil:
		return false
	case action.Drop:
		s.log.Debug().Str("uri", x.path).Msg("sandbox: fault drops the connection")
		closeConn(x.w)
	case action.LoseAnswer:
		s.log.Debug().Str("uri", x.path).Msg("sandbox: fault carries the request out and loses the answer")
		w := x.w
		x.w = discard{header: http.Header{}}
		x.serve()
		closeConn(w)
	default:
		s.log.Debug().Str("uri", x.path).Int("status", action.Status).Msg("sandbox: fault answers")
		x.fail(action.Status, http.StatusText(action.Status))
	}
	return true
}

// closeConn closes w's connection without an answer.
func closeConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// discard is a ResponseWriter that keeps nothing: the answer a
// lose_answer fault loses.
type discard struct{ header http.Header }

func (d discard) Header() http.Header         { return d.header }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

// pickFaults draws the faults a request meets: the latency they add (at
// most maxLatency in all) and the first that answers it, each counted down.
func (s *Simulator) pickFaults() (delay time.Duration, action *fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.faults[:0]
	for _, f := range s.faults {
		selected := f.Ratio == 0 || s.faultRand.Float64() < f.Ratio
		used := false
		if selected && f.latency > 0 {
			delay += f.latency
			used = true
		}
		if selected && action == nil && (f.Status != 0 || f.Drop || f.LoseAnswer) {
			snap := *f
			action, used = &snap, true
		}
		if used && f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				continue
			}
		}
		kept = append(kept, f)
	}
	clear(s.faults[len(kept):])
	s.faults = kept
	return min(delay, maxLatency), action
}
