package webhooks

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Admin returns the operators' handler, for the admin listener: GET
// /webhooks (per route: pending, delivered, dead, oldest pending age), GET
// /webhooks/messages?route=R&state=S&limit=N, and POST /webhooks/replay
// with {"route": R, "id": ID} or {"route": R, "state": "dead"}. Its
// answers never include a callback's body.
func (s *Service) Admin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /webhooks", s.serveStats)
	mux.HandleFunc("GET /webhooks/messages", s.serveMessages)
	mux.HandleFunc("POST /webhooks/replay", s.serveReplay)
	return mux
}

// routeStatsView is a route's line in GET /webhooks.
type routeStatsView struct {
	Pending          int     `json:"pending"`
	Delivered        int     `json:"delivered"`
	Dead             int     `json:"dead"`
	OldestPendingAge float64 `json:"oldest_pending_age_seconds"`
}

func (s *Service) serveStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.q.Stats()
	if err != nil {
		adminError(w, http.StatusServiceUnavailable, "the webhook store could not be read")
		return
	}
	now := s.now()
	out := make(map[string]routeStatsView, len(st))
	for name := range s.config().routes {
		out[name] = routeStatsView{}
	}
	for name, rs := range st {
		v := routeStatsView{Pending: rs.Pending, Delivered: rs.Delivered, Dead: rs.Dead}
		if rs.Pending > 0 && !rs.OldestPending.IsZero() {
			v.OldestPendingAge = max(now.Sub(rs.OldestPending), 0).Seconds()
		}
		out[name] = v
	}
	writeJSON(w, http.StatusOK, map[string]any{"routes": out})
}

// messageView is a message as operators see it: no body.
type messageView struct {
	ID          string     `json:"id"`
	Route       string     `json:"route"`
	Account     string     `json:"account"`
	Sid         string     `json:"sid"`
	State       State      `json:"state"`
	Source      Source     `json:"source"`
	Attempts    int        `json:"attempts"`
	ReceivedAt  time.Time  `json:"received_at"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	Size        int        `json:"size"`
	Variants    int        `json:"variants,omitempty"`
}

func viewOf(m Message) messageView {
	v := messageView{
		ID: m.ID, Route: m.Route, Account: m.Account, Sid: m.Sid, State: m.State, Source: m.Source,
		Attempts: m.Attempts, ReceivedAt: m.ReceivedAt, LastError: m.LastError, Size: len(m.Body),
		Variants: m.Variants,
	}
	if m.State == StatePending {
		next := m.NextAttempt
		v.NextAttempt = &next
	}
	return v
}

const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

func (s *Service) serveMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	st := State(q.Get("state"))
	if !validState(st) {
		adminError(w, http.StatusBadRequest, "state: want pending, delivered or dead")
		return
	}
	limit := defaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			adminError(w, http.StatusBadRequest, "limit: want 1 to 1000")
			return
		}
		limit = n
	}
	msgs, err := s.q.List(q.Get("route"), st, limit)
	if err != nil {
		adminError(w, http.StatusServiceUnavailable, "the webhook store could not be read")
		return
	}
	out := make([]messageView, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, viewOf(m))
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out})
}

func validState(st State) bool {
	return st == StatePending || st == StateDelivered || st == StateDead
}

// replayRequest is POST /webhooks/replay's body.
type replayRequest struct {
	Route string `json:"route"`
	ID    string `json:"id"`
	State State  `json:"state"`
}

func (s *Service) serveReplay(w http.ResponseWriter, r *http.Request) {
	var req replayRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		adminError(w, http.StatusBadRequest, "body: want {\"route\": R, \"id\": ID} or {\"route\": R, \"state\": \"dead\"}")
		return
	}
	n, err := s.replay(req)
	switch {
	case errors.Is(err, ErrNoMessage):
		adminError(w, http.StatusNotFound, "no such message on that route, or it is pending")
	case errors.Is(err, errReplayRequest):
		adminError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		adminError(w, http.StatusServiceUnavailable, "the webhook store could not be written")
	default:
		writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
	}
}

var errReplayRequest = errors.New("give either id (with route) or state (dead or delivered)")

// replay puts a finished message, or every one in a state, back in the
// queue, and wakes the dispatchers.
func (s *Service) replay(req replayRequest) (int, error) {
	var n int
	var err error
	switch {
	case req.ID != "" && req.State == "" && req.Route != "":
		n, err = s.q.Replay(req.Route, req.ID)
	case req.ID == "" && (req.State == StateDead || req.State == StateDelivered):
		n, err = s.q.ReplayState(req.Route, req.State)
	default:
		return 0, errReplayRequest
	}
	if n > 0 {
		s.wakeAll()
	}
	return n, err
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func adminError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
