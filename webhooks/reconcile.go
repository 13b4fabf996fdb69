package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// verify asks Exotel about m's Sid. It returns why m is forged ("" when
// Exotel confirms it), or an error when Exotel could not be asked.
func (s *Service) verify(ctx context.Context, rt *route, m Message) (string, error) {
	cb, err := ParseCallback(rt.Kind, m.ContentType, m.Body)
	if err != nil {
		return "not a valid callback", nil
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultDeliverTimeout)
	defer cancel()
	d, err := s.lookup(ctx, rt.Account, rt.Kind, cb.Sid)
	if errors.Is(err, ErrNotFound) {
		return "no such Sid in the account", nil
	}
	if err != nil {
		return "", err
	}
	if contradicts(rt.Kind, cb.Status, d.Status) {
		return fmt.Sprintf("Exotel says %q, the callback %q", d.Status, cb.Status), nil
	}
	return "", nil
}

// contradicts reports whether a callback's status and Exotel's record
// disagree: both final, and different. A record that is not final yet may
// lag behind the callback.
func contradicts(kind Kind, callback, exotel string) bool {
	final := callStatuses
	if kind == KindSMS {
		final = smsStatuses
	}
	return final[callback] && final[exotel] && callback != exotel
}

// Expect records that the gateway placed call sid with its callbacks sent
// to route: if no terminal callback arrives within the route's
// reconcile_after, the reconciler asks Exotel. It does nothing for a route
// without reconciliation.
func (s *Service) Expect(route, sid string) error {
	rt := s.route(route)
	if rt == nil {
		return fmt.Errorf("webhooks: no route %q", route)
	}
	if rt.Kind != KindCall || rt.ReconcileAfter <= 0 || s.lookup == nil {
		return nil
	}
	return s.q.Expect(Expectation{Route: route, Account: rt.Account, Sid: sid, At: s.now().Add(rt.ReconcileAfter)})
}

// reconcileEvery is how often the reconciler looks for calls whose
// terminal callback is overdue.
const reconcileEvery = 5 * time.Second

// reconcile runs reconcileDue until the service closes.
func (s *Service) reconcile() {
	defer s.workers.Done()
	if s.lookup == nil {
		return
	}
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
			s.reconcileDue(s.bg)
		}
	}
}

// reconcileDue asks Exotel about each call whose terminal callback is
// overdue. A call that has ended gets a synthetic terminal callback,
// accepted like Exotel's own (same dedupe key) and marked as polled; one
// still going is asked about again after reconcile_after.
func (s *Service) reconcileDue(ctx context.Context) {
	due, err := s.q.DueExpectations(s.now(), 32)
	if err != nil {
		s.log.Error().Err(err).Msg("webhooks: reading overdue calls failed")
		return
	}
	for _, e := range due {
		if ctx.Err() != nil {
			return
		}
		if err := s.reconcileOne(ctx, e); err != nil {
			s.log.Warn().Err(err).Str("route", e.Route).Str("sid", e.Sid).Msg("webhooks: reconciling a call failed")
		}
	}
}

// retryLookup is when a failed lookup is tried again.
const retryLookup = time.Minute

func (s *Service) reconcileOne(ctx context.Context, e Expectation) error {
	rt := s.route(e.Route)
	if rt == nil || rt.ReconcileAfter <= 0 {
		return s.q.Fulfil(e.Route, e.Sid)
	}
	lctx, cancel := context.WithTimeout(ctx, DefaultDeliverTimeout)
	d, err := s.lookup(lctx, e.Account, KindCall, e.Sid)
	cancel()
	if errors.Is(err, ErrNotFound) {
		s.log.Warn().Str("route", e.Route).Str("sid", e.Sid).Msg("webhooks: Exotel has no record of a placed call")
		return s.q.Fulfil(e.Route, e.Sid)
	}
	if err != nil {
		return errors.Join(err, s.q.Postpone(e.Route, e.Sid, s.now().Add(retryLookup)))
	}
	if !callStatuses[d.Status] {
		return s.q.Postpone(e.Route, e.Sid, s.now().Add(rt.ReconcileAfter))
	}
	body := syntheticCallback(e.Sid, d)
	cb := Callback{Kind: KindCall, Sid: e.Sid, Status: d.Status, EventType: "terminal"}
	out, _, err := s.q.Accept(Message{
		Route: e.Route, Account: e.Account, Key: cb.DedupeKey(e.Route), Sid: e.Sid, Terminal: true,
		ContentType: "application/x-www-form-urlencoded", Body: body, Source: SourcePoll,
		ReceivedAt: s.now(),
	})
	if err != nil {
		return err
	}
	if out == Accepted {
		s.stats.polled()
		s.wake(e.Route)
	}
	return s.q.Fulfil(e.Route, e.Sid)
}

// syntheticCallback builds the form-urlencoded terminal callback Exotel
// would have sent, from its record of the call.
func syntheticCallback(sid string, d Details) []byte {
	v := url.Values{}
	for k, f := range d.Fields {
		v.Set(k, f)
	}
	v.Set("CallSid", sid)
	v.Set("Status", d.Status)
	v.Set("EventType", "terminal")
	return []byte(v.Encode())
}
