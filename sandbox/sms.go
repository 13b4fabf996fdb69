package sandbox

import (
	"net/http"
)

// sendSMS sends a v1 SMS: Sms/send.
func (x *exchange) sendSMS() {
	v, ok := x.paramsOrFail("From", "To", "Body")
	if !ok {
		return
	}
	s := x.s
	now := s.now()
	sid := s.newSid()
	account := x.route.Account
	m := &sms{
		res: smsResource{
			Sid: sid, AccountSid: account, From: v.Get("From"), To: v.Get("To"),
			DateCreated: stamp(now), DateUpdated: stamp(now), Body: v.Get("Body"),
			Direction: "outbound-api", URI: "/v1/Accounts/" + account + "/SMSMessages/" + sid + x.jsonSuffix(),
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
	x.resource("SMSMessage", res)
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
			Direction: "outbound-api", URI: "/v1/Accounts/" + x.route.Account + "/SMSMessages/" + sid + x.jsonSuffix(),
			Status: "sent", DetailedStatus: "DELIVERED_TO_HANDSET", DetailedStatusCode: 20005, SmsUnits: 1,
		}
	}
	x.resource("SMSMessage", res)
}
