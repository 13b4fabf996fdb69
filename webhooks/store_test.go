package webhooks

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)

// fakeClock is a settable clock for the store.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func openTestStore(t *testing.T, clock *fakeClock) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "webhooks.db"), StoreOptions{Clock: clock.Now, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// callMsg is a call callback message for route with sid and status.
func callMsg(route, sid, status string, at time.Time) Message {
	cb := Callback{Kind: KindCall, Sid: sid, Status: status, EventType: "terminal"}
	return Message{
		Route: route, Account: "acme", Key: cb.DedupeKey(route), Sid: sid, Terminal: cb.Terminal(),
		ContentType: "application/x-www-form-urlencoded",
		Body:        []byte("CallSid=" + sid + "&Status=" + status + "&EventType=terminal"),
		ReceivedAt:  at,
	}
}

func mustAccept(t *testing.T, s *Store, m Message) Message {
	t.Helper()
	out, got, err := s.Accept(m)
	if err != nil {
		t.Fatal(err)
	}
	if out != Accepted {
		t.Fatalf("Accept(%s) = %v, want Accepted", m.Key, out)
	}
	return got
}

func ids(ms []Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestStoreOpenFileModeAndLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhooks.db")
	s, err := OpenStore(path, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	// bbolt's lock is a flock, held per open file: a second open in this
	// process waits for it as another process would.
	_, err = OpenStore(path, StoreOptions{})
	want := "webhook store " + path + " is locked by another process"
	if err == nil || err.Error() != want {
		t.Fatalf("second open: %v, want %q", err, want)
	}
}

func TestStoreOpenBadPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "webhooks.db")
	_, err := OpenStore(path, StoreOptions{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want one naming %s", err, path)
	}
}

func TestStoreAccept(t *testing.T) {
	clock := &fakeClock{t: t0}
	s := openTestStore(t, clock)
	m := callMsg("calls", "CA1", "completed", time.Time{})
	got := mustAccept(t, s, m)
	if !regexp.MustCompile(`^msg_[0-9a-v]{26}$`).MatchString(got.ID) {
		t.Errorf("ID %q", got.ID)
	}
	if got.State != StatePending || !got.NextAttempt.Equal(t0) || !got.ReceivedAt.Equal(t0) || got.Source != SourceExotel {
		t.Errorf("accepted %+v", got)
	}
	stored, err := s.Get(got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(stored.Body) != string(m.Body) || stored.Key != m.Key || stored.ContentType != m.ContentType ||
		stored.Account != "acme" || !stored.Terminal || stored.Sid != "CA1" {
		t.Errorf("stored %+v", stored)
	}

	out, dup, err := s.Accept(m)
	if err != nil || out != Duplicate || dup.ID != got.ID || dup.Variants != 0 {
		t.Errorf("repeat: %v %+v %v, want Duplicate of %s", out, dup, err, got.ID)
	}
	v := m
	v.Body = []byte("CallSid=CA1&Status=completed&EventType=terminal&RecordingUrl=x")
	out, orig, err := s.Accept(v)
	if err != nil || out != Variant || orig.ID != got.ID || orig.Variants != 1 || string(orig.Body) != string(m.Body) {
		t.Errorf("variant: %v %+v %v", out, orig, err)
	}
	if stored, _ := s.Get(got.ID); stored.Variants != 1 {
		t.Errorf("stored variants %d, want 1", stored.Variants)
	}

	given := callMsg("calls", "CA2", "completed", t0)
	given.ID = "msg_given"
	if got := mustAccept(t, s, given); got.ID != "msg_given" {
		t.Errorf("ID %q, want the given one", got.ID)
	}
	clash := callMsg("calls", "CA3", "completed", t0)
	clash.ID = "msg_given"
	if _, _, err := s.Accept(clash); err == nil {
		t.Error("an ID already taken was accepted")
	}
	if _, _, err := s.Accept(Message{Route: "calls"}); err == nil {
		t.Error("a message without a key was accepted")
	}
	if st, _ := s.Stats(); st["calls"].Pending != 2 {
		t.Errorf("stats %+v, want 2 pending", st)
	}
}

func TestStoreConcurrentAcceptOneKey(t *testing.T) {
	s := openTestStore(t, &fakeClock{t: t0})
	const n = 32
	outs := make([]Outcome, n)
	stored := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m := callMsg("calls", "CA1", "completed", t0)
			if i%2 == 1 {
				m.Body = append(m.Body, "&odd=1"...)
			}
			out, got, err := s.Accept(m)
			if err != nil {
				t.Error(err)
			}
			outs[i], stored[i] = out, got.ID
		})
	}
	wg.Wait()
	accepted := 0
	for i := range n {
		if outs[i] == Accepted {
			accepted++
		}
		if stored[i] != stored[0] {
			t.Errorf("caller %d got message %s, caller 0 %s", i, stored[i], stored[0])
		}
	}
	if accepted != 1 {
		t.Errorf("%d accepted, want exactly 1 (%v)", accepted, outs)
	}
	all, err := s.List("", "", 0)
	if err != nil || len(all) != 1 {
		t.Fatalf("List = %d messages, %v; want 1", len(all), err)
	}
	same := 0
	for i := range n {
		if outs[i] == Duplicate || outs[i] == Accepted {
			same++
		}
	}
	// Half the callers sent the other body: whichever half came first, the
	// other half are variants.
	if all[0].Variants != n-same {
		t.Errorf("variants %d, want %d", all[0].Variants, n-same)
	}
}

func TestStoreDueAndNextDue(t *testing.T) {
	clock := &fakeClock{t: t0}
	s := openTestStore(t, clock)
	if _, ok, err := s.NextDue("calls"); ok || err != nil {
		t.Fatalf("NextDue on empty = %v, %v", ok, err)
	}
	a := mustAccept(t, s, callMsg("calls", "CA1", "completed", t0.Add(2*time.Second)))
	b := mustAccept(t, s, callMsg("calls", "CA2", "completed", t0))
	c := mustAccept(t, s, callMsg("calls", "CA3", "completed", t0.Add(time.Second)))
	// A route whose name is a prefix of another's must not see its messages.
	other := mustAccept(t, s, callMsg("call", "CA4", "completed", t0))
	mustAccept(t, s, callMsg("calls2", "CA5", "completed", t0))

	at, ok, err := s.NextDue("calls")
	if err != nil || !ok || !at.Equal(t0) {
		t.Errorf("NextDue = %v %v %v, want %v", at, ok, err, t0)
	}
	tests := []struct {
		name string
		now  time.Time
		n    int
		skip func(string) bool
		want []string
	}{
		{"all due, earliest first", t0.Add(time.Hour), 10, nil, []string{b.ID, c.ID, a.ID}},
		{"at most n", t0.Add(time.Hour), 2, nil, []string{b.ID, c.ID}},
		{"not yet due", t0.Add(time.Second - 1), 10, nil, []string{b.ID}},
		{"due exactly now", t0.Add(time.Second), 10, nil, []string{b.ID, c.ID}},
		{"skipped", t0.Add(time.Hour), 2, func(id string) bool { return id == b.ID }, []string{c.ID, a.ID}},
		{"before any", t0.Add(-1), 10, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Due("calls", tt.now, tt.n, tt.skip)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tt.want) {
				t.Errorf("Due = %v, want %v", ids(got), tt.want)
			}
		})
	}
	if got, _ := s.Due("call", t0, 10, nil); !slices.Equal(ids(got), []string{other.ID}) {
		t.Errorf("Due(call) = %v, want only %s", ids(got), other.ID)
	}

	if err := s.Reschedule(b.ID, t0.Add(time.Minute), "503"); err != nil {
		t.Fatal(err)
	}
	if at, _, _ := s.NextDue("calls"); !at.Equal(t0.Add(time.Second)) {
		t.Errorf("NextDue after reschedule = %v", at)
	}
	if err := s.Finish(c.ID, StateDelivered, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(a.ID, StateDead, "410"); err != nil {
		t.Fatal(err)
	}
	if at, ok, _ := s.NextDue("calls"); !ok || !at.Equal(t0.Add(time.Minute)) {
		t.Errorf("NextDue = %v %v, want the rescheduled %v", at, ok, t0.Add(time.Minute))
	}
	got, _ := s.Due("calls", t0.Add(time.Hour), 10, nil)
	if !slices.Equal(ids(got), []string{b.ID}) {
		t.Errorf("Due after finish = %v, want only %s", ids(got), b.ID)
	}
}

func TestStoreRescheduleFinish(t *testing.T) {
	s := openTestStore(t, &fakeClock{t: t0})
	m := mustAccept(t, s, callMsg("calls", "CA1", "completed", t0))
	if err := s.Reschedule(m.ID, t0.Add(time.Second), "status 500"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reschedule(m.ID, t0.Add(3*time.Second), "timeout"); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(m.ID)
	if got.Attempts != 2 || got.LastError != "timeout" || !got.NextAttempt.Equal(t0.Add(3*time.Second)) || got.State != StatePending {
		t.Errorf("after reschedules: %+v", got)
	}
	if err := s.Finish(m.ID, StateDelivered, "status 204"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(m.ID)
	if got.Attempts != 3 || got.State != StateDelivered || got.LastError != "status 204" {
		t.Errorf("after finish: %+v", got)
	}
	for name, err := range map[string]error{
		"reschedule delivered": s.Reschedule(m.ID, t0, ""),
		"finish delivered":     s.Finish(m.ID, StateDead, ""),
		"reschedule unknown":   s.Reschedule("msg_nope", t0, ""),
		"finish unknown":       s.Finish("msg_nope", StateDelivered, ""),
	} {
		if !errors.Is(err, ErrNoMessage) {
			t.Errorf("%s: %v, want ErrNoMessage", name, err)
		}
	}
	if err := s.Finish(m.ID, StatePending, ""); err == nil {
		t.Error("Finish to pending accepted")
	}
	if _, err := s.Get("msg_nope"); !errors.Is(err, ErrNoMessage) {
		t.Errorf("Get unknown: %v", err)
	}
}

func TestStoreList(t *testing.T) {
	s := openTestStore(t, &fakeClock{t: t0})
	var all []Message
	for i := range 6 {
		route := []string{"calls", "sms"}[i%2]
		all = append(all, mustAccept(t, s, callMsg(route, fmt.Sprint("CA", i), "completed", t0.Add(time.Duration(i)*time.Second))))
	}
	s.Finish(all[0].ID, StateDead, "gone")
	s.Finish(all[1].ID, StateDead, "gone")
	s.Finish(all[2].ID, StateDead, "gone")
	s.Finish(all[3].ID, StateDelivered, "")
	tests := []struct {
		route string
		st    State
		limit int
		want  []int
	}{
		{"", "", 0, []int{5, 4, 3, 2, 1, 0}},
		{"", "", 2, []int{5, 4}},
		{"calls", "", 0, []int{4, 2, 0}},
		{"", StateDead, 0, []int{2, 1, 0}},
		{"calls", StateDead, 0, []int{2, 0}},
		{"calls", StateDead, 1, []int{2}},
		{"sms", StateDelivered, 0, []int{3}},
		{"sms", StatePending, 0, []int{5}},
		{"calls", StateDelivered, 0, nil},
		{"nosuch", "", 0, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%d", tt.route, tt.st, tt.limit), func(t *testing.T) {
			got, err := s.List(tt.route, tt.st, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, i := range tt.want {
				want = append(want, all[i].ID)
			}
			if !slices.Equal(ids(got), want) {
				t.Errorf("List = %v, want %v", ids(got), want)
			}
		})
	}
	if _, err := s.List("", "lost", 0); err == nil {
		t.Error("unknown state listed")
	}
}

func TestStoreReplay(t *testing.T) {
	clock := &fakeClock{t: t0}
	s := openTestStore(t, clock)
	a := mustAccept(t, s, callMsg("calls", "CA1", "completed", t0))
	b := mustAccept(t, s, callMsg("calls", "CA2", "completed", t0))
	c := mustAccept(t, s, callMsg("sms", "CA3", "completed", t0))
	d := mustAccept(t, s, callMsg("calls", "CA4", "completed", t0))
	s.Finish(a.ID, StateDead, "gone")
	s.Finish(b.ID, StateDead, "gone")
	s.Finish(c.ID, StateDead, "gone")
	s.Finish(d.ID, StateDelivered, "")
	clock.Set(t0.Add(time.Hour))

	if n, err := s.Replay("calls", a.ID); n != 1 || err != nil {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	got, _ := s.Get(a.ID)
	if got.State != StatePending || got.Attempts != 1 || !got.NextAttempt.Equal(t0.Add(time.Hour)) || got.ID != a.ID {
		t.Errorf("replayed %+v", got)
	}
	if n, err := s.Replay("calls", a.ID); n != 0 || err != nil {
		t.Errorf("Replay of a pending message = %d, %v; want 0, nil", n, err)
	}
	if _, err := s.Replay("sms", b.ID); !errors.Is(err, ErrNoMessage) {
		t.Errorf("Replay in the wrong route: %v", err)
	}
	if _, err := s.Replay("", "msg_nope"); !errors.Is(err, ErrNoMessage) {
		t.Errorf("Replay unknown: %v", err)
	}
	if n, err := s.Replay("", d.ID); n != 1 || err != nil {
		t.Errorf("Replay of a delivered message = %d, %v", n, err)
	}
	if _, err := s.ReplayState("", StatePending); err == nil {
		t.Error("ReplayState of pending accepted")
	}
	if n, err := s.ReplayState("calls", StateDead); n != 1 || err != nil {
		t.Errorf("ReplayState(calls, dead) = %d, %v; want 1", n, err)
	}
	if n, err := s.ReplayState("", StateDead); n != 1 || err != nil {
		t.Errorf("ReplayState(all, dead) = %d, %v; want 1", n, err)
	}
	due, _ := s.Due("calls", t0.Add(time.Hour), 10, nil)
	if len(due) != 3 {
		t.Errorf("due after replays: %v", ids(due))
	}
	st, _ := s.Stats()
	if st["calls"].Pending != 3 || st["calls"].Dead != 0 || st["sms"].Pending != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestStoreStats(t *testing.T) {
	s := openTestStore(t, &fakeClock{t: t0})
	if st, err := s.Stats(); err != nil || len(st) != 0 {
		t.Fatalf("empty Stats = %v, %v", st, err)
	}
	a := mustAccept(t, s, callMsg("calls", "CA1", "completed", t0))
	mustAccept(t, s, callMsg("calls", "CA2", "completed", t0.Add(time.Second)))
	c := mustAccept(t, s, callMsg("sms", "CA3", "completed", t0))
	s.Finish(a.ID, StateDelivered, "")
	s.Finish(c.ID, StateDead, "")
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]RouteStats{
		"calls": {Pending: 1, Delivered: 1, OldestPending: t0.Add(time.Second)},
		"sms":   {Dead: 1},
	}
	for r, w := range want {
		g := st[r]
		if g.Pending != w.Pending || g.Delivered != w.Delivered || g.Dead != w.Dead || !g.OldestPending.Equal(w.OldestPending) {
			t.Errorf("%s: %+v, want %+v", r, g, w)
		}
	}
}

func TestStoreSweep(t *testing.T) {
	clock := &fakeClock{t: t0}
	s := openTestStore(t, clock) // retention 1h
	old := mustAccept(t, s, callMsg("calls", "CA1", "completed", t0))
	oldPending := mustAccept(t, s, callMsg("calls", "CA2", "completed", t0))
	recent := mustAccept(t, s, callMsg("calls", "CA3", "completed", t0.Add(50*time.Minute)))
	s.Finish(old.ID, StateDelivered, "")
	s.Finish(recent.ID, StateDead, "")

	n, err := s.Sweep(t0.Add(61 * time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	if _, err := s.Get(old.ID); !errors.Is(err, ErrNoMessage) {
		t.Errorf("old delivered message still there: %v", err)
	}
	if _, err := s.Get(oldPending.ID); err != nil {
		t.Errorf("old pending message swept: %v", err)
	}
	if _, err := s.Get(recent.ID); err != nil {
		t.Errorf("recent message swept: %v", err)
	}
	// The swept keys are free again: a repeat now is a new message.
	for _, sid := range []string{"CA1", "CA2"} {
		if out, _, _ := s.Accept(callMsg("calls", sid, "completed", t0.Add(62*time.Minute))); out != Accepted {
			t.Errorf("%s after sweep: %v, want Accepted", sid, out)
		}
	}
	if out, _, _ := s.Accept(callMsg("calls", "CA3", "completed", t0.Add(62*time.Minute))); out != Duplicate {
		t.Errorf("CA3 within retention: %v, want Duplicate", out)
	}
	// The old pending message, finished later, goes at the next sweep;
	// its key, now another message's, stays.
	s.Finish(oldPending.ID, StateDead, "")
	if n, err := s.Sweep(t0.Add(62 * time.Minute)); err != nil || n != 1 {
		t.Fatalf("second Sweep = %d, %v; want 1", n, err)
	}
	if out, _, _ := s.Accept(callMsg("calls", "CA2", "completed", t0.Add(62*time.Minute))); out != Duplicate {
		t.Errorf("CA2 after its old message was swept: %v, want Duplicate of the new one", out)
	}
	st, _ := s.Stats()
	if st["calls"].Delivered != 0 || st["calls"].Dead != 1 || st["calls"].Pending != 2 {
		t.Errorf("stats after sweep %+v", st["calls"])
	}
}

func TestStoreSweepManyChunks(t *testing.T) {
	s := openTestStore(t, &fakeClock{t: t0})
	const n = sweepChunk*2 + 10
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i := range n {
			m := callMsg("calls", fmt.Sprint("CA", i), "completed", t0)
			m.ID, m.State, m.NextAttempt = fmt.Sprintf("msg_%06d", i), StatePending, t0
			if i%3 == 0 {
				m.State = StateDead
			}
			if _, _, err := accept(tx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Sweep(t0.Add(2 * time.Hour))
	if want := (n + 2) / 3; got != want || err != nil {
		t.Fatalf("Sweep = %d, %v; want %d", got, err, want)
	}
	st, _ := s.Stats()
	if st["calls"].Dead != 0 || st["calls"].Pending != n-(n+2)/3 {
		t.Errorf("stats %+v", st["calls"])
	}
}

func TestStoreExpectations(t *testing.T) {
	s := openTestStore(t, &fakeClock{t: t0})
	e1 := Expectation{Route: "calls", Account: "acme", Sid: "CA1", At: t0.Add(time.Minute)}
	e2 := Expectation{Route: "calls", Account: "acme", Sid: "CA2", At: t0.Add(2 * time.Minute)}
	e3 := Expectation{Route: "other", Account: "acme", Sid: "CA1", At: t0.Add(30 * time.Second)}
	for _, e := range []Expectation{e1, e2, e3, e1} {
		if err := s.Expect(e); err != nil {
			t.Fatal(err)
		}
	}
	sids := func(es []Expectation) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Route+"/"+e.Sid)
		}
		return out
	}
	got, err := s.DueExpectations(t0.Add(time.Hour), 10)
	if err != nil || !slices.Equal(sids(got), []string{"other/CA1", "calls/CA1", "calls/CA2"}) {
		t.Fatalf("DueExpectations = %v, %v", sids(got), err)
	}
	if got[1].Account != "acme" || !got[1].At.Equal(e1.At) {
		t.Errorf("expectation %+v", got[1])
	}
	if got, _ := s.DueExpectations(t0.Add(time.Minute), 1); !slices.Equal(sids(got), []string{"other/CA1"}) {
		t.Errorf("at most 1: %v", sids(got))
	}
	if err := s.Postpone("calls", "CA1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Postpone("calls", "CA9", t0); !errors.Is(err, ErrNoMessage) {
		t.Errorf("Postpone absent: %v", err)
	}
	if got, _ := s.DueExpectations(t0.Add(2*time.Minute), 10); !slices.Equal(sids(got), []string{"other/CA1", "calls/CA2"}) {
		t.Errorf("after postpone: %v", sids(got))
	}
	if err := s.Fulfil("other", "CA1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Fulfil("other", "CA1"); err != nil {
		t.Errorf("Fulfil absent: %v", err)
	}
	// A terminal callback fulfils its expectation in Accept's transaction;
	// a non-terminal one does not.
	answered := callMsg("calls", "CA2", "in-progress", t0)
	answered.Terminal = false
	mustAccept(t, s, answered)
	if got, _ := s.DueExpectations(t0.Add(time.Hour), 10); !slices.Equal(sids(got), []string{"calls/CA2", "calls/CA1"}) {
		t.Errorf("after a non-terminal callback: %v", sids(got))
	}
	mustAccept(t, s, callMsg("calls", "CA2", "completed", t0))
	if got, _ := s.DueExpectations(t0.Add(time.Hour), 10); !slices.Equal(sids(got), []string{"calls/CA1"}) {
		t.Errorf("after a terminal callback: %v", sids(got))
	}
}

func TestStoreReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhooks.db")
	s, err := OpenStore(path, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := mustAccept(t, s, callMsg("calls", "CA1", "completed", t0))
	s.Expect(Expectation{Route: "calls", Sid: "CA2", At: t0})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(m.ID); err == nil {
		t.Error("Get after Close succeeded")
	}
	s, err = OpenStore(path, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(m.ID)
	if err != nil || string(got.Body) != string(m.Body) {
		t.Errorf("after reopen: %+v, %v", got, err)
	}
	if es, _ := s.DueExpectations(t0, 10); len(es) != 1 {
		t.Errorf("expectations after reopen: %v", es)
	}
}

// TestStoreStatsMatchList runs a random sequence of operations and checks
// after each that the counters agree with what List finds.
func TestStoreStatsMatchList(t *testing.T) {
	clock := &fakeClock{t: t0}
	s := openTestStore(t, clock)
	rng := rand.New(rand.NewPCG(13, 1))
	routes := []string{"a", "ab", "b"}
	for step := range 400 {
		clock.Set(t0.Add(time.Duration(step) * time.Minute))
		if err := randomOp(s, rng, routes, clock.Now()); err != nil && !errors.Is(err, ErrNoMessage) {
			t.Fatalf("step %d: %v", step, err)
		}
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			checkStatsAgainstList(t, s, r, st[r])
		}
	}
}

func randomOp(s *Store, rng *rand.Rand, routes []string, now time.Time) error {
	route := routes[rng.IntN(len(routes))]
	pick := func() string {
		all, _ := s.List(route, "", 0)
		if len(all) == 0 {
			return "msg_none"
		}
		return all[rng.IntN(len(all))].ID
	}
	switch rng.IntN(7) {
	case 0, 1:
		_, _, err := s.Accept(callMsg(route, fmt.Sprint("CA", rng.IntN(60)), "completed", now))
		return err
	case 2:
		return s.Reschedule(pick(), now.Add(time.Duration(rng.IntN(10))*time.Minute), "failed")
	case 3:
		return s.Finish(pick(), []State{StateDelivered, StateDead}[rng.IntN(2)], "")
	case 4:
		_, err := s.Replay(route, pick())
		return err
	case 5:
		_, err := s.ReplayState([]string{"", route}[rng.IntN(2)], []State{StateDelivered, StateDead}[rng.IntN(2)])
		return err
	default:
		_, err := s.Sweep(now.Add(-30 * time.Minute))
		return err
	}
}

func checkStatsAgainstList(t *testing.T, s *Store, route string, got RouteStats) {
	t.Helper()
	count := map[State]int{}
	var oldest time.Time
	all, err := s.List(route, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		count[m.State]++
		if m.State == StatePending && (oldest.IsZero() || m.ReceivedAt.Before(oldest)) {
			oldest = m.ReceivedAt
		}
	}
	for _, st := range []State{StatePending, StateDelivered, StateDead} {
		byState, _ := s.List(route, st, 0)
		if len(byState) != count[st] {
			t.Fatalf("%s: List(%s) has %d, List(all) %d", route, st, len(byState), count[st])
		}
	}
	if got.Pending != count[StatePending] || got.Delivered != count[StateDelivered] || got.Dead != count[StateDead] ||
		!got.OldestPending.Equal(oldest) {
		t.Fatalf("%s: Stats %+v, List %v oldest %v", route, got, count, oldest)
	}
	due, _ := s.Due(route, t0.Add(1000*time.Hour), 1<<30, nil)
	if len(due) != count[StatePending] {
		t.Fatalf("%s: %d due, %d pending", route, len(due), count[StatePending])
	}
}

// TestStoreQueueOffHeap fills the queue with pending messages (a target
// that is down) and checks that the Go heap does not grow with them: the
// queue lives in the file, read through the indexes.
func TestStoreQueueOffHeap(t *testing.T) {
	s := openTestStore(t, &fakeClock{t: t0})
	fill := func(from, to int) {
		t.Helper()
		for lo := from; lo < to; lo += 5000 {
			err := s.db.Update(func(tx *bolt.Tx) error {
				for i := lo; i < min(lo+5000, to); i++ {
					m := callMsg("calls", fmt.Sprint("CA", i), "completed", t0.Add(time.Duration(i)))
					m.ID, m.State, m.NextAttempt = fmt.Sprintf("msg_%07d", i), StatePending, m.ReceivedAt
					m.Body = append(m.Body, "&Pad="+strings.Repeat("x", 1024)...)
					if _, _, err := accept(tx, m); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	const small, large = 1000, 30000
	fill(0, small)
	before := heap()
	fill(small, large)
	due, err := s.Due("calls", t0.Add(time.Hour), 64, nil)
	if err != nil || len(due) != 64 {
		t.Fatalf("Due = %d, %v", len(due), err)
	}
	after := heap()
	// The bodies alone are over 30 MiB: a queue held in memory would grow
	// the heap by that much.
	grown := int64(after) - int64(before)
	if grown > 4<<20 {
		t.Errorf("heap grew by %d KiB from %d to %d pending", grown>>10, small, large)
	}
	t.Logf("heap %d KiB with %d pending, %d KiB with %d", before>>10, small, after>>10, large)
	if st, _ := s.Stats(); st["calls"].Pending != large {
		t.Errorf("pending %d, want %d", st["calls"].Pending, large)
	}
}

// A store has an identity of its own, made once and kept in the file: two
// stores differ, a reopened one is the same. Replicas claim under it.
func TestStoreID(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) string {
		t.Helper()
		s, err := OpenStore(filepath.Join(dir, name), StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if !strings.HasPrefix(s.ID(), "store_") || len(s.ID()) < 20 {
			t.Fatalf("ID %q", s.ID())
		}
		return s.ID()
	}
	a, b := open("a.db"), open("b.db")
	if a == b {
		t.Errorf("two stores share the identity %q", a)
	}
	if again := open("a.db"); again != a {
		t.Errorf("reopened store has identity %q, was %q", again, a)
	}
	if got := replicaName("host-1", a); got != "host-1/"+a {
		t.Errorf("replicaName = %q", got)
	}
	if got := replicaName("", a); got != a {
		t.Errorf("replicaName without a label = %q", got)
	}
}

// Message ids sort in the order they were made (to the millisecond), so
// new records append to the msg bucket; and they stay unique and of one
// length within a millisecond.
func TestMessageIDsAreTimeOrdered(t *testing.T) {
	base := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	var prev string
	seen := map[string]bool{}
	for i := range 2000 {
		id := strings.ToLower(idEncoding.EncodeToString(timeOrderedID(base.Add(time.Duration(i/4) * time.Millisecond))))
		if len(id) != 26 {
			t.Fatalf("id %q: %d characters, want 26", id, len(id))
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
		if i%4 == 0 && id <= prev {
			t.Fatalf("id %q made a millisecond after %q sorts before it", id, prev)
		}
		prev = id
	}
	if id := newMessageID(); !strings.HasPrefix(id, "msg_") || len(id) != 30 {
		t.Errorf("newMessageID() = %q", id)
	}
}
