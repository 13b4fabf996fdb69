package webhooks

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeExotel is Exotel's record of calls and SMS, as Lookup reads it.
type fakeExotel struct {
	mu      sync.Mutex
	records map[string]Details // by Sid
	err     error
	asked   []string
}

func (f *fakeExotel) set(sid, status string, fields map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.records == nil {
		f.records = map[string]Details{}
	}
	f.records[sid] = Details{Sid: sid, Status: status, Fields: fields}
}

// askedN returns how many lookups were made.
func (f *fakeExotel) askedN() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.asked)
}

func (f *fakeExotel) lookup(_ context.Context, account string, kind Kind, sid string) (Details, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, account+"/"+string(kind)+"/"+sid)
	if f.err != nil {
		return Details{}, f.err
	}
	d, ok := f.records[sid]
	if !ok {
		return Details{}, ErrNotFound
	}
	return d, nil
}

func TestVerifyExotel(t *testing.T) {
	ex := &fakeExotel{}
	ex.set(callSid, "completed", nil)
	e := newEnv(t, func(c *Config, d *Deps) {
		c.Routes[0].Verify = VerifyExotel
		d.Lookup = ex.lookup
	})
	forged := "CallSid=0123456789abcdef&Status=completed"
	contra := "CallSid=" + callSid + "&Status=busy"
	for _, body := range []string{forged, contra} {
		if w := e.post("calls", formType, body); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
	}
	e.deliverDue("calls")
	dead, _ := e.q.List("calls", StateDead, 10)
	if len(dead) != 2 {
		t.Fatalf("%d dead, want the forged Sid and the contradicting status", len(dead))
	}
	for _, m := range dead {
		if !strings.HasPrefix(m.LastError, "forged: ") {
			t.Fatalf("dead for %q", m.LastError)
		}
	}
	// Exotel cannot be asked: the callback waits, no delivery.
	ex.err = errors.New("exotel unreachable")
	ok := "CallSid=" + callSid + "&Status=completed"
	e.post("calls", formType, ok)
	e.deliverDue("calls")
	p := e.only("calls", StatePending)
	if p.LastError != "verify: exotel unreachable" {
		t.Fatalf("pending %+v", p)
	}
	if n := e.target.hits.Load(); n != 0 {
		t.Fatalf("target hit %d times", n)
	}
	ex.err = nil
	e.advance(time.Minute)
	e.deliverDue("calls")
	if d := e.target.wait(t); string(d.body) != ok {
		t.Fatalf("delivered %q", d.body)
	}
	e.only("calls", StateDelivered)
	if c := e.svc.Counters(); c.Attempts[resForged] != 2 || c.Dead != 2 || c.Delivered != 1 {
		t.Fatalf("counters %+v", c)
	}
	if ex.asked[0] != testAccount+"/call/0123456789abcdef" && ex.asked[1] != testAccount+"/call/0123456789abcdef" {
		t.Fatalf("asked %v", ex.asked)
	}
}

// TestReconcileSynthesizes: a call placed with exogate:// whose terminal
// callback never came gets one built from Exotel's record, once the call
// has ended, delivered marked as polled; Exotel's late callback is then a
// repeat.
func TestReconcileSynthesizes(t *testing.T) {
	ex := &fakeExotel{}
	ex.set(callSid, "in-progress", nil)
	e := newEnv(t, func(c *Config, d *Deps) {
		c.Routes[0].ReconcileAfter = 10 * time.Minute
		d.Lookup = ex.lookup
	})
	if err := e.svc.Expect("calls", callSid); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Expect("sms", smsSid); err != nil {
		t.Fatal("Expect on a route without reconciliation:", err)
	}
	e.svc.reconcileDue(context.Background())
	if len(ex.asked) != 0 {
		t.Fatal("asked Exotel before reconcile_after")
	}
	e.advance(10 * time.Minute)
	e.svc.reconcileDue(context.Background())
	if len(ex.asked) != 1 {
		t.Fatalf("asked %v", ex.asked)
	}
	if n := e.deliverDue("calls"); n != 0 {
		t.Fatal("a callback synthesized for a call still going")
	}
	ex.set(callSid, "completed", map[string]string{"RecordingUrl": "https://r/x.mp3", "DateUpdated": "2026-12-05 08:10:00"})
	e.advance(10 * time.Minute)
	e.svc.reconcileDue(context.Background())
	e.deliverDue("calls")
	d := e.target.wait(t)
	if d.header.Get("X-Exogate-Source") != "poll" || d.header.Get("Content-Type") != formType {
		t.Fatalf("headers %v", d.header)
	}
	v, err := url.ParseQuery(string(d.body))
	if err != nil || v.Get("CallSid") != callSid || v.Get("Status") != "completed" || v.Get("EventType") != "terminal" ||
		v.Get("RecordingUrl") != "https://r/x.mp3" {
		t.Fatalf("synthetic callback %q", d.body)
	}
	verifySig(t, d, e.clock.Now())
	if c := e.svc.Counters(); c.Polled != 1 {
		t.Fatalf("counters %+v", c)
	}
	// Exotel's own terminal callback, late: same key, not delivered again.
	e.post("calls", formType, "CallSid="+callSid+"&Status=completed")
	if n := e.deliverDue("calls"); n != 0 {
		t.Fatal("the late real callback was delivered again")
	}
	e.advance(time.Hour)
	e.svc.reconcileDue(context.Background())
	if len(ex.asked) != 2 {
		t.Fatalf("asked again after the terminal callback: %v", ex.asked)
	}
}

// TestReconcileNotNeeded: a terminal callback that arrives in time ends
// the wait; Exotel is never asked.
func TestReconcileNotNeeded(t *testing.T) {
	ex := &fakeExotel{}
	e := newEnv(t, func(c *Config, d *Deps) {
		c.Routes[0].ReconcileAfter = 10 * time.Minute
		d.Lookup = ex.lookup
	})
	e.svc.Expect("calls", callSid)
	e.post("calls", formType, callForm)
	e.advance(time.Hour)
	e.svc.reconcileDue(context.Background())
	if len(ex.asked) != 0 {
		t.Fatalf("asked %v", ex.asked)
	}
}
