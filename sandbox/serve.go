package sandbox

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"

	"github.com/exogate/exogate/internal/exotel"
)

// xmlHeader starts every XML answer, as in Exotel's own.
const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// exchange is one API request being answered.
type exchange struct {
	s        *Simulator
	w        http.ResponseWriter
	r        *http.Request
	req      Request
	body     []byte
	path     string // raw, before '?'
	query    string
	route    exotel.Route
	routeErr error
}

// fail answers an error in the path's shape.
func (x *exchange) fail(status int, msg string) {
	body, ct := exotel.AppendError(nil, x.route.Shape, status, msg, x.r.Method, x.requestID())
	x.w.Header().Set("Content-Type", ct)
	x.w.WriteHeader(status)
	_, _ = x.w.Write(body)
}

// write answers body, with the content type of the path's shape.
func (x *exchange) write(status int, body string) {
	ct := "application/json"
	if x.route.Shape == exotel.ShapeXML {
		ct = "application/xml"
	}
	x.w.Header().Set("Content-Type", ct)
	x.w.WriteHeader(status)
	_, _ = io.WriteString(x.w, body)
}

// requestID draws a v2 envelope's request_id.
func (x *exchange) requestID() string {
	if x.route.Shape != exotel.ShapeV2 {
		return ""
	}
	return x.s.newSid()
}

// resource answers a v1 resource: as <TwilioResponse><name>… in XML, or
// {"name":…} in JSON.
func (x *exchange) resource(name string, v any) {
	if x.route.Shape == exotel.ShapeXML {
		x.xmlResources(name, v)
		return
	}
	x.jsonAnswer(http.StatusOK, map[string]any{name: v})
}

// resourceList answers list, each element as a resource named name: in
// XML one after the other in the TwilioResponse, in JSON an array of
// {name: element}.
func (x *exchange) resourceList(name string, list []smsResource) {
	elems := make([]any, 0, len(list))
	for _, v := range list {
		elems = append(elems, v)
	}
	if x.route.Shape == exotel.ShapeXML {
		x.xmlResources(name, elems...)
		return
	}
	wrapped := make([]map[string]any, 0, len(list))
	for _, v := range elems {
		wrapped = append(wrapped, map[string]any{name: v})
	}
	x.jsonAnswer(http.StatusOK, wrapped)
}

// xmlResources answers vs, each as an element named name, in a
// TwilioResponse.
func (x *exchange) xmlResources(name string, vs ...any) {
	var b strings.Builder
	b.WriteString(xmlHeader + "<TwilioResponse>")
	for _, v := range vs {
		el, err := xml.Marshal(v)
		if err != nil {
			x.fail(http.StatusInternalServerError, "Internal error")
			return
		}
		b.WriteString("<" + name + ">" + string(inner(el)) + "</" + name + ">")
	}
	b.WriteString("</TwilioResponse>")
	x.write(http.StatusOK, b.String())
}

// jsonAnswer answers v as JSON with status.
func (x *exchange) jsonAnswer(status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		x.fail(http.StatusInternalServerError, "Internal error")
		return
	}
	x.write(status, string(b))
}

// inner strips the outer element xml.Marshal wraps a struct in.
func inner(b []byte) []byte {
	start := bytes.IndexByte(b, '>')
	end := bytes.LastIndexByte(b, '<')
	if start < 0 || end <= start {
		return nil
	}
	return b[start+1 : end]
}

// envelope answers a v2 success envelope around data.
func (x *exchange) envelope(status int, data any) {
	x.jsonAnswer(status, map[string]any{
		"request_id": x.requestID(),
		"method":     x.r.Method,
		"http_code":  status,
		"response": map[string]any{
			"code":       status,
			"error_data": nil,
			"status":     "success",
			"data":       data,
		},
	})
}

// serve answers a request that no override or fault took: the path's
// checks, the credentials, the rate limit, then the endpoint.
func (x *exchange) serve() {
	switch {
	case errors.Is(x.routeErr, exotel.ErrMethod):
		x.fail(http.StatusMethodNotAllowed, "Method not allowed")
		return
	case errors.Is(x.routeErr, exotel.ErrBadPath):
		x.fail(http.StatusBadRequest, "Bad request path")
		return
	case x.routeErr != nil:
		x.fail(http.StatusNotFound, "The requested resource was not found")
		return
	}
	key, token, ok := basicAuth(x.r.Header.Values("Authorization"))
	if !ok || !x.s.accepts(x.route.Account, key, token) {
		// Exotel answers a wrong key, token or region with 401.
		x.fail(http.StatusUnauthorized, "Authentication failed. Check your API key and token.")
		return
	}
	if !x.s.allow(x.route, x.req.At) {
		x.fail(http.StatusTooManyRequests, "Too Many Requests")
		return
	}
	x.dispatch(resourcePath(x.path))
}

// resourcePath returns the segments after the account SID,
// empty ones skipped and a trailing ".json" trimmed.
func resourcePath(path string) []string {
	var segs []string
	for _, seg := range strings.Split(path, "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	if len(segs) <= 3 {
		return nil
	}
	rest := segs[3:]
	last := len(rest) - 1
	if strings.HasSuffix(strings.ToLower(rest[last]), ".json") {
		rest[last] = rest[last][:len(rest[last])-len(".json")]
	}
	return rest
}

// dispatch answers by the family and the resource path.
func (x *exchange) dispatch(rest []string) {
	get, post := x.r.Method == http.MethodGet, x.r.Method == http.MethodPost
	switch x.route.Family {
	case exotel.FamilyV1:
		switch {
		case post && match(rest, "calls", "connect"):
			x.connect()
		case get && match(rest, "calls"):
			x.listCalls()
		case get && len(rest) == 2 && match(rest[:1], "calls"):
			x.callDetails(rest[1])
		case post && match(rest, "sms", "send"):
			x.sendSMS()
		case post && match(rest, "sms", "bulksend"):
			x.bulkSendSMS()
		case get && len(rest) == 3 && match(rest[:2], "sms", "messages"):
			x.smsDetails(rest[2])
		default:
			x.unsimulated()
		}
	case exotel.FamilyV2:
		switch {
		case post && match(rest, "calls"):
			x.connectV2()
		case get && match(rest, "calls"):
			x.listCallsV2()
		case get && len(rest) == 2 && match(rest[:1], "calls"):
			x.callDetailsV2(rest[1])
		default:
			x.unsimulated()
		}
	default:
		x.unsimulated()
	}
}

// unsimulated answers a path Exotel routes but the simulator does not
// model: a 404 that says so, so that a sandbox user is not shown an empty
// success. In lenient mode (the project's own tests, which proxy every
// routed path) an empty success in the path's shape.
func (x *exchange) unsimulated() {
	if x.s.strict {
		x.fail(http.StatusNotFound, x.r.Method+" "+x.r.URL.Path+" is not simulated by exogate sandbox, "+
			"which answers v1 Calls/connect, Calls, Calls/{Sid}, Sms/send, Sms/bulksend, SMS/Messages/{Sid} and v2 calls")
		return
	}
	if x.route.Shape == exotel.ShapeV2 {
		x.envelope(http.StatusOK, map[string]any{})
		return
	}
	x.empty()
}

// empty answers 200 with an empty resource in the path's shape.
func (x *exchange) empty() {
	if x.route.Shape == exotel.ShapeXML {
		x.write(http.StatusOK, xmlHeader+"<TwilioResponse></TwilioResponse>")
		return
	}
	x.write(http.StatusOK, "{}")
}

// match reports whether rest is want, matched case-insensitively.
func match(rest []string, want ...string) bool {
	if len(rest) != len(want) {
		return false
	}
	for i := range want {
		if !strings.EqualFold(rest[i], want[i]) {
			return false
		}
	}
	return true
}

// params returns the request's parameters: the query string's, then the
// body's (form-urlencoded or multipart/form-data).
func (x *exchange) params() (url.Values, error) {
	v, err := url.ParseQuery(x.query)
	if err != nil {
		return nil, errors.New("malformed query string")
	}
	if len(x.body) == 0 {
		return v, nil
	}
	mt, mp, err := mime.ParseMediaType(x.r.Header.Get("Content-Type"))
	if err != nil {
		mt = "application/x-www-form-urlencoded"
	}
	switch mt {
	case "multipart/form-data":
		form, err := multipart.NewReader(bytes.NewReader(x.body), mp["boundary"]).ReadForm(1 << 20)
		if err != nil {
			return nil, errors.New("malformed multipart body")
		}
		defer func() { _ = form.RemoveAll() }()
		for k, vals := range form.Value {
			v[k] = append(v[k], vals...)
		}
	case "application/json":
		return nil, errors.New("unsupported content type: send application/x-www-form-urlencoded or multipart/form-data")
	default:
		body, err := url.ParseQuery(string(x.body))
		if err != nil {
			return nil, errors.New("malformed form body")
		}
		for k, vals := range body {
			v[k] = append(v[k], vals...)
		}
	}
	return v, nil
}

// required returns the first of names missing from v, or "".
func required(v url.Values, names ...string) string {
	for _, n := range names {
		if strings.TrimSpace(v.Get(n)) == "" {
			return n
		}
	}
	return ""
}

// paramsOrFail reads the parameters and checks the required ones,
// answering 400 when they are wrong.
func (x *exchange) paramsOrFail(names ...string) (url.Values, bool) {
	v, err := x.params()
	if err != nil && x.s.strict {
		x.fail(http.StatusBadRequest, err.Error())
		return nil, false
	}
	if v == nil {
		v = url.Values{}
	}
	if missing := required(v, names...); missing != "" && x.s.strict {
		x.fail(http.StatusBadRequest, "Missing parameter: "+missing+" is required")
		return nil, false
	}
	return v, true
}
