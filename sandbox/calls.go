package sandbox

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exogate/exogate/internal/exotel"
)

// maxSidFilter is how many Sids the Calls list's Sid filter takes.
const maxSidFilter = 100

// maxPage is the highest Page the Calls list takes: past it the offset
// could overflow, and every page is empty long before.
const maxPage = 1000000

// connect places a v1 call: Calls/connect.
func (x *exchange) connect() {
	v, ok := x.paramsOrFail("From", "To", "CallerId")
	if !ok || !x.callbackOK(v) || !x.reserve(1) {
		return
	}
	c := x.s.placeCall(x.route.Account, v.Get("From"), v.Get("To"), v.Get("CallerId"), x.jsonSuffix())
	c.callback = v.Get("StatusCallback")
	c.events = callbackEvents(v)
	c.jsonBody = strings.EqualFold(strings.TrimSpace(v.Get("StatusCallbackContentType")), "application/json")
	c.customField = v.Get("CustomField")
	res := x.s.addCall(c)
	x.resource("Call", res)
}

// callbackOK answers 400 when a strict simulator is given a StatusCallback
// it would not send to, and reports whether it did not.
func (x *exchange) callbackOK(v url.Values) bool {
	if problem := callbackURLProblem(v.Get("StatusCallback")); problem != "" && x.s.strict {
		x.fail(http.StatusBadRequest, problem)
		return false
	}
	return true
}

// reserve answers 429 when n more calls or SMS would be past maxPending,
// and reports whether they are not.
func (x *exchange) reserve(n int) bool {
	if !x.s.reserve(n) {
		x.fail(http.StatusTooManyRequests, "Too many calls and SMS in progress: wait for some to end")
		return false
	}
	return true
}

// jsonSuffix is ".json" when the path asked for JSON.
func (x *exchange) jsonSuffix() string {
	if x.route.Shape == exotel.ShapeJSON {
		return ".json"
	}
	return ""
}

// callbackEvents returns the events StatusCallbackEvents asked for
// (StatusCallbackEvents[], StatusCallbackEvents[0]..., comma lists).
func callbackEvents(v url.Values) []string {
	var events []string
	for k, vals := range v {
		if !strings.HasPrefix(k, "StatusCallbackEvents") {
			continue
		}
		for _, val := range vals {
			for _, e := range strings.Split(val, ",") {
				e = strings.ToLower(strings.TrimSpace(e))
				if (e == "answered" || e == "terminal") && !slices.Contains(events, e) {
					events = append(events, e)
				}
			}
		}
	}
	return events
}

// placeCall makes a new in-progress call with a fresh Sid.
func (s *Simulator) placeCall(account, from, to, callerID, suffix string) *call {
	return s.placeCallWithSid(account, from, to, callerID, suffix, s.newSid())
}

// placeCallWithSid makes a new in-progress call with the given Sid.
func (s *Simulator) placeCallWithSid(account, from, to, callerID, suffix, sid string) *call {
	now := s.now()
	return &call{
		res: callResource{
			Sid: sid, DateCreated: stamp(now), DateUpdated: stamp(now), AccountSid: account,
			To: to, From: from, PhoneNumberSid: callerID, Status: "in-progress",
			StartTime: stamp(now), Direction: "outbound-api",
			URI: "/v1/Accounts/" + account + "/Calls/" + sid + suffix,
		},
		account: account,
		created: now,
		outcome: callOutcome(to),
	}
}

// addCall stores c, schedules its end on a slot the caller reserved, and
// returns its resource as placed.
func (s *Simulator) addCall(c *call) callResource {
	s.mu.Lock()
	s.store.addCall(c)
	res := c.res
	s.mu.Unlock()
	s.goAfterRing(func() { s.endCall(c) })
	return res
}

// endCall moves c to its outcome and sends its callbacks.
func (s *Simulator) endCall(c *call) {
	now := s.now()
	s.mu.Lock()
	o := c.outcome
	// Time is compressed: the call ends now, at the end of its ring, while
	// Duration (and the callback's ConversationDuration) report the outcome
	// rule's conversation, so that EndTime is never ahead of the clock.
	endStamp, d := stamp(now), o.duration
	c.res.Status, c.res.EndTime, c.res.Duration, c.res.DateUpdated = o.status, &endStamp, &d, stamp(now)
	if o.answered {
		p := price(o.duration)
		c.res.Price = &p
	}
	snap := *c
	s.mu.Unlock()
	if snap.callback == "" {
		return
	}
	if o.answered && slices.Contains(snap.events, "answered") {
		s.sendCallCallback(&snap, "answered")
	}
	s.sendCallCallback(&snap, "terminal")
}

// callDetails answers one v1 call.
func (x *exchange) callDetails(sid string) {
	x.s.mu.Lock()
	c, ok := x.s.store.calls[sid]
	var res callResource
	if ok && c.account == x.route.Account {
		res = c.res
	}
	x.s.mu.Unlock()
	if !ok || c.account != x.route.Account {
		if x.s.strict {
			x.fail(http.StatusNotFound, "Call "+sid+" was not found")
			return
		}
		res = x.s.placeholderCall(x.route.Account, sid, x.jsonSuffix())
	}
	x.resource("Call", res)
}

// callFilter is the v1 Calls list's filters.
type callFilter struct {
	sids     []string
	gte, lte time.Time
	to, from string
	pageSize int
	page     int
}

// parseCallFilter reads the Calls list's query string.
func parseCallFilter(v url.Values) (callFilter, string) {
	f := callFilter{pageSize: 50}
	if s := v.Get("Sid"); s != "" {
		for _, sid := range strings.Split(s, ",") {
			if sid = strings.TrimSpace(sid); sid != "" {
				f.sids = append(f.sids, sid)
			}
		}
		if len(f.sids) > maxSidFilter {
			return f, "Sid takes at most 100 Sids"
		}
	}
	if d := v.Get("DateCreated"); d != "" {
		for _, part := range strings.FieldsFunc(d, func(r rune) bool { return r == ';' || r == ',' }) {
			op, val, _ := strings.Cut(strings.TrimSpace(part), ":")
			t, err := parseStamp(val)
			if err != nil || (op != "gte" && op != "lte") {
				return f, "DateCreated must be gte:YYYY-MM-DD HH:MM:SS and/or lte:YYYY-MM-DD HH:MM:SS"
			}
			if op == "gte" {
				f.gte = t
			} else {
				f.lte = t
			}
		}
	}
	f.to, f.from = v.Get("To"), v.Get("From")
	if ps := v.Get("PageSize"); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 100 {
			return f, "PageSize must be a number from 1 to 100"
		}
		f.pageSize = n
	}
	if p := v.Get("Page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > maxPage {
			return f, "Page must be a number from 0 to 1000000"
		}
		f.page = n
	}
	return f, ""
}

func parseStamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.ParseInLocation(timeLayout, s, ist); err == nil {
		return t, nil
	}
	return time.ParseInLocation("2006-01-02", s, ist)
}

func (f callFilter) keep(c *call) bool {
	if len(f.sids) > 0 && !slices.Contains(f.sids, c.res.Sid) {
		return false
	}
	created := c.created.Truncate(time.Second)
	if !f.gte.IsZero() && created.Before(f.gte) || !f.lte.IsZero() && created.After(f.lte) {
		return false
	}
	return (f.to == "" || c.res.To == f.to) && (f.from == "" || c.res.From == f.from)
}

// filterCalls returns the account's calls that f keeps, newest first, and
// how many there are in all.
func (s *Simulator) filterCalls(account string, f callFilter) (page []callResource, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	skip := f.page * f.pageSize
	for i := len(s.store.callOrder) - 1; i >= 0; i-- {
		c := s.store.calls[s.store.callOrder[i]]
		if c.account != account || !f.keep(c) {
			continue
		}
		if total >= skip && len(page) < f.pageSize {
			page = append(page, c.res)
		}
		total++
	}
	return page, total
}

// listCalls answers the v1 Calls list.
func (x *exchange) listCalls() {
	v, err := url.ParseQuery(x.query)
	if err != nil {
		x.fail(http.StatusBadRequest, "malformed query string")
		return
	}
	f, problem := parseCallFilter(v)
	if problem != "" {
		x.fail(http.StatusBadRequest, problem)
		return
	}
	calls, total := x.s.filterCalls(x.route.Account, f)
	path := x.path
	pageURI := func(n int) string {
		q := url.Values{}
		for k, vals := range v {
			q[k] = vals
		}
		q.Set("Page", strconv.Itoa(n))
		q.Set("PageSize", strconv.Itoa(f.pageSize))
		return path + "?" + q.Encode()
	}
	meta := listMetadata{Total: total, PageSize: f.pageSize, Page: f.page, FirstPageURI: pageURI(0)}
	if f.page > 0 {
		prev := pageURI(f.page - 1)
		meta.PrevPageURI = &prev
	}
	if (f.page+1)*f.pageSize < total {
		next := pageURI(f.page + 1)
		meta.NextPageURI = &next
	}
	if calls == nil {
		calls = []callResource{}
	}
	x.writeList(meta, calls)
}

// listMetadata is a list's Metadata.
type listMetadata struct {
	Total        int     `json:"Total" xml:"Total"`
	PageSize     int     `json:"PageSize" xml:"PageSize"`
	Page         int     `json:"Page" xml:"Page"`
	FirstPageURI string  `json:"FirstPageUri" xml:"FirstPageUri"`
	PrevPageURI  *string `json:"PrevPageUri" xml:"PrevPageUri,omitempty"`
	NextPageURI  *string `json:"NextPageUri" xml:"NextPageUri,omitempty"`
}

// writeList answers a Calls list: {"Metadata":…,"Calls":[…]}, or in XML
// <TwilioResponse><Metadata>…</Metadata><Calls><Call>…</Call>…</Calls>.
func (x *exchange) writeList(meta listMetadata, calls []callResource) {
	if x.route.Shape == exotel.ShapeJSON {
		x.jsonAnswer(http.StatusOK, struct {
			Metadata listMetadata `json:"Metadata"`
			Calls    []callResource
		}{meta, calls})
		return
	}
	type callsXML struct {
		Calls []callResource `xml:"Call"`
	}
	b, err := xml.Marshal(struct {
		XMLName  xml.Name     `xml:"List"`
		Metadata listMetadata `xml:"Metadata"`
		Calls    callsXML     `xml:"Calls"`
	}{Metadata: meta, Calls: callsXML{calls}})
	if err != nil {
		x.fail(http.StatusInternalServerError, "Internal error")
		return
	}
	x.write(http.StatusOK, xmlHeader+"<TwilioResponse>"+string(inner(b))+"</TwilioResponse>")
}

// placeholderCall is what a lenient simulator answers for an unknown Sid:
// a completed call.
func (s *Simulator) placeholderCall(account, sid, suffix string) callResource {
	c := s.placeCallWithSid(account, "", "", "", suffix, sid)
	d, end := 0, c.res.StartTime
	c.res.Status, c.res.Duration, c.res.EndTime = "completed", &d, &end
	return c.res
}
