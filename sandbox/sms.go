package sandbox

import (
	"net/http"
	"net/url"
	"strings"
)

// sendSMS sends a v1 SMS: Sms/send.
func (x *exchange) sendSMS() {
	v, ok := x.paramsOrFail("From", "To", "Body")
	if !ok || !x.callbackOK(v) || !x.reserve(1) {
		return
	}
	x.resource("SMSMessage", x.s.queueSMS(x.route.Account, v.Get("To"), v, x.jsonSuffix()))
}

// maxBulk is how many numbers one Sms/bulksend takes.
const maxBulk = 100

// bulkSendSMS sends one SMS to each number in To (a comma-separated list,
// or repeated To or To[] fields): Sms/bulksend, answered as a list of
// SMSMessage.
func (x *exchange) bulkSendSMS() {
	v, ok := x.paramsOrFail("From", "Body")
	if !ok {
		return
	}
	var to []string
	for _, key := range []string{"To", "To[]"} {
		for _, val := range v[key] {
			for _, n := range strings.Split(val, ",") {
				if n = strings.TrimSpace(n); n != "" {
					to = append(to, n)
				}
			}
		}
	}
	switch {
	case len(to) == 0 && x.s.strict:
		x.fail(http.StatusBadRequest, "Missing parameter: To is required")
		return
	case len(to) > maxBulk:
		x.fail(http.StatusBadRequest, "To takes at most 100 numbers")
		return
	}
	if !x.callbackOK(v) || !x.reserve(len(to)) {
		return
	}
	list := make([]smsResource, 0, len(to))
	suffix := x.jsonSuffix()
	for _, n := range to {
		list = append(list, x.s.queueSMS(x.route.Account, n, v, suffix))
	}
	x.resourceList("SMSMessage", list)
}

// smsURI is an SMSMessage's Uri: the SMS/Messages path that answers it.
func smsURI(account, sid, suffix string) string {
	return "/v1/Accounts/" + account + "/SMS/Messages/" + sid + suffix
}

// queueSMS makes and stores a queued SMS to one number, schedules its
// delivery on a slot the caller reserved, and returns its resource as
// queued.
func (s *Simulator) queueSMS(account, to string, v url.Values, suffix string) smsResource {
	now := s.now()
	sid := s.newSid()
	m := &sms{
		res: smsResource{
			Sid: sid, AccountSid: account, From: v.Get("From"), To: to,
			DateCreated: stamp(now), DateUpdated: stamp(now), Body: v.Get("Body"),
			Direction: "outbound-api", URI: smsURI(account, sid, suffix),
			Status: "queued", DetailedStatus: "PENDING_TO_OPERATOR", DetailedStatusCode: 21010,
			SmsUnits: smsUnits(v.Get("Body")),
		},
		account:     account,
		callback:    v.Get("StatusCallback"),
		customField: v.Get("CustomField"),
	}
	s.mu.Lock()
	s.store.addSMS(m)
	res := m.res
	s.mu.Unlock()
	s.goAfterRing(func() { s.deliverSMS(m) })
	return res
}

// deliverSMS moves m to its outcome and sends its callback.
func (s *Simulator) deliverSMS(m *sms) {
	now := stamp(s.now())
	s.mu.Lock()
	m.res.Status, m.res.DetailedStatus, m.res.DetailedStatusCode = smsOutcome(m.res.To)
	m.res.DateUpdated = now
	if m.res.Status == "sent" {
		m.res.DateSent = &now
		p := "0.200"
		m.res.Price = &p
	}
	snap := *m
	s.mu.Unlock()
	if snap.callback != "" {
		s.sendSMSCallback(&snap)
	}
}

// smsDetails answers one SMS: SMS/Messages/{SmsSid}.
func (x *exchange) smsDetails(sid string) {
	x.s.mu.Lock()
	m, ok := x.s.store.sms[sid]
	ok = ok && m.account == x.route.Account
	var res smsResource
	if ok {
		res = m.res
	}
	x.s.mu.Unlock()
	if !ok && x.s.strict {
		x.fail(http.StatusNotFound, "SMS "+sid+" was not found")
		return
	}
	if !ok {
		now := stamp(x.s.now())
		res = smsResource{
			Sid: sid, AccountSid: x.route.Account, DateCreated: now, DateUpdated: now, DateSent: &now,
			Direction: "outbound-api", URI: smsURI(x.route.Account, sid, x.jsonSuffix()),
			Status: "sent", DetailedStatus: "DELIVERED_TO_HANDSET", DetailedStatusCode: 20005, SmsUnits: 1,
		}
	}
	x.resource("SMSMessage", res)
}
