package sandbox

import (
	"encoding/json"
	"mime"
	"net/http"
)

// v2Request is the body of POST /v2/accounts/{sid}/calls.
type v2Request struct {
	From          v2Contact `json:"from"`
	To            v2Contact `json:"to"`
	VirtualNumber string    `json:"virtual_number"`
	CustomField   string    `json:"custom_field"`
}

type v2Contact struct {
	ContactURI string `json:"contact_uri"`
}

// connectV2 places a v2 call.
func (x *exchange) connectV2() {
	var in v2Request
	if problem, status := x.decodeV2(&in); problem != "" && x.s.strict {
		x.fail(status, problem)
		return
	}
	switch {
	case !x.s.strict:
		// A lenient simulator places the call with what it has.
	case in.From.ContactURI == "":
		x.fail(http.StatusBadRequest, "from.contact_uri is required")
		return
	case in.To.ContactURI == "":
		x.fail(http.StatusBadRequest, "to.contact_uri is required")
		return
	case in.VirtualNumber == "":
		x.fail(http.StatusBadRequest, "virtual_number is required")
		return
	}
	if !x.reserve(1) {
		return
	}
	c := x.s.placeCall(x.route.Account, in.From.ContactURI, in.To.ContactURI, in.VirtualNumber, ".json")
	c.customField = in.CustomField
	res := x.s.addCall(c)
	x.envelope(http.StatusOK, v2Call(res, c.customField))
}

// decodeV2 reads a v2 JSON body into in, and says what is wrong with it.
func (x *exchange) decodeV2(in *v2Request) (problem string, status int) {
	mt, _, err := mime.ParseMediaType(x.r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return "Content-Type must be application/json", http.StatusUnsupportedMediaType
	}
	if err := json.Unmarshal(x.body, in); err != nil {
		return "Request body is not valid JSON", http.StatusBadRequest
	}
	return "", 0
}

// v2Call is a call as the v2 API shows it.
func v2Call(res callResource, customField string) map[string]any {
	return map[string]any{
		"id":             res.Sid,
		"account_sid":    res.AccountSid,
		"from":           map[string]any{"contact_uri": res.From},
		"to":             map[string]any{"contact_uri": res.To},
		"virtual_number": res.PhoneNumberSid,
		"status":         res.Status,
		"direction":      res.Direction,
		"created_time":   res.DateCreated,
		"updated_time":   res.DateUpdated,
		"start_time":     res.StartTime,
		"end_time":       res.EndTime,
		"duration":       res.Duration,
		"price":          res.Price,
		"custom_field":   customField,
	}
}

// callDetailsV2 answers one v2 call.
func (x *exchange) callDetailsV2(id string) {
	x.s.mu.Lock()
	c, ok := x.s.store.calls[id]
	ok = ok && c.account == x.route.Account
	var data map[string]any
	if ok {
		data = v2Call(c.res, c.customField)
	}
	x.s.mu.Unlock()
	if !ok && x.s.strict {
		x.fail(http.StatusNotFound, "Call "+id+" was not found")
		return
	}
	if !ok {
		data = v2Call(x.s.placeholderCall(x.route.Account, id, ".json"), "")
	}
	x.envelope(http.StatusOK, data)
}

// listCallsV2 answers the account's v2 calls, newest first (at most 100).
func (x *exchange) listCallsV2() {
	x.s.mu.Lock()
	calls := []map[string]any{}
	for i := len(x.s.store.callOrder) - 1; i >= 0 && len(calls) < 100; i-- {
		c := x.s.store.calls[x.s.store.callOrder[i]]
		if c.account == x.route.Account {
			calls = append(calls, v2Call(c.res, c.customField))
		}
	}
	x.s.mu.Unlock()
	x.envelope(http.StatusOK, calls)
}
