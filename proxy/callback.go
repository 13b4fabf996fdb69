package proxy

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"

	"github.com/exogate/exogate/internal/exotel"
)

// CallbackScheme marks a callback URL the gateway fills in: a caller
// placing a call or sending an SMS may set StatusCallback=exogate://ROUTE
// and the gateway puts the webhook route's public URL in its place.
const CallbackScheme = "exogate://"

// CallbackResolver turns a webhook route named in an exogate:// URL into
// the URL Exotel should call, for a request on account. It refuses a route
// that does not exist, belongs to another account or receives another kind
// of callback (kind is "call" or "sms").
type CallbackResolver interface {
	CallbackURL(account, kind, route string) (string, error)
	// Expect says that Exotel placed call sid (on account) whose callbacks
	// go to route, so that the route can ask Exotel when none comes.
	Expect(account, route, sid string)
}

// callbackKind is the kind of callback an operation's StatusCallback
// receives, or "" for an operation that names none.
func callbackKind(op exotel.Operation) string {
	switch op {
	case exotel.OpCallsConnect:
		return "call"
	case exotel.OpSMSSend, exotel.OpSMSBulkSend:
		return "sms"
	}
	return ""
}

var errNoWebhooks = errors.New("exogate:// names a webhook route, and none is configured")

// fillCallbacks substitutes the exogate:// URLs of a preloaded body.
func (h *Handler) fillCallbacks(ex *exchange, r *http.Request, kind string) error {
	if kind == "" {
		return nil
	}
	resolve := func(route string) (string, error) {
		if h.callbacks == nil {
			return "", errNoWebhooks
		}
		return h.callbacks.CallbackURL(ex.route.Account, kind, route)
	}
	out, routes, err := substituteCallbacks(ex.body.rec, r.Header.Get("Content-Type"), resolve)
	if err != nil || routes == nil {
		return err
	}
	ex.body.rec = out
	ex.body.pre.Reset(out)
	if kind == "call" {
		ex.expect = routes
	}
	return nil
}

// maxCallAnswer bounds the part of a Calls/connect answer read for its Sid.
const maxCallAnswer = 64 << 10

// expectCallbacks is the ReverseProxy's ModifyResponse: when a call placed
// with an exogate:// callback was answered 200, it tells the route the
// call's Sid, read from Exotel's answer (JSON or XML), and passes the
// answer on unchanged.
func (h *Handler) expectCallbacks(resp *http.Response) error {
	if resp.Request == nil {
		return nil
	}
	ex := exchangeOf(resp.Request.Context())
	if ex == nil || ex.expect == nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxCallAnswer))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	if err != nil {
		return nil // the copy to the caller will meet the same error
	}
	if sid := callSid(head); sid != "" {
		for _, route := range ex.expect {
			h.callbacks.Expect(ex.route.Account, route, sid)
		}
	}
	return nil
}

// callSid reads Call.Sid from a v1 Calls/connect answer, in JSON
// ({"Call":{"Sid":…}}) or XML (<TwilioResponse><Call><Sid>…).
func callSid(body []byte) string {
	var j struct{ Call struct{ Sid string } }
	if json.Unmarshal(body, &j) == nil && j.Call.Sid != "" {
		return j.Call.Sid
	}
	var x struct {
		Call struct{ Sid string }
	}
	if xml.Unmarshal(body, &x) == nil {
		return x.Call.Sid
	}
	return ""
}

// errCallbackRoute is a request naming an exogate:// route the gateway
// refuses; the caller gets 400.
type errCallbackRoute struct{ err error }

func (e *errCallbackRoute) Error() string { return "StatusCallback: " + e.err.Error() }
func (e *errCallbackRoute) Unwrap() error { return e.err }

// substituteCallbacks replaces every value of the body that is an
// exogate://ROUTE URL with the route's public URL, in a form
// (application/x-www-form-urlencoded), multipart/form-data or JSON body,
// leaving everything else as it was. It returns the body unchanged (and
// false) when nothing was replaced; the routes it substituted are in
// routes.
func substituteCallbacks(body []byte, contentType string, resolve func(route string) (string, error)) (out []byte, routes []string, err error) {
	if !bytes.Contains(bytes.ToLower(body), []byte("exogate")) { // also %3A-escaped
		return body, nil, nil
	}
	sub := func(v string) (string, bool, error) {
		if len(v) < len(CallbackScheme) || !strings.EqualFold(v[:len(CallbackScheme)], CallbackScheme) {
			return v, false, nil
		}
		route := v[len(CallbackScheme):]
		u, err := resolve(route)
		if err != nil {
			return "", false, &errCallbackRoute{err}
		}
		routes = append(routes, route)
		return u, true, nil
	}
	media, params, _ := mime.ParseMediaType(contentType)
	switch {
	case media == "application/json" || strings.HasSuffix(media, "+json"):
		out, err = substituteJSON(body, sub)
	case media == "multipart/form-data":
		out, err = substituteMultipart(body, params["boundary"], sub)
	default: // Exotel's v1 APIs take forms; a body without a type is one
		out, err = substituteForm(body, sub)
	}
	if err != nil {
		return nil, nil, err
	}
	return out, routes, nil
}

type substituter func(v string) (string, bool, error)

// substituteForm rewrites only the pairs whose value it replaces, so the
// rest of the body stays byte for byte.
func substituteForm(body []byte, sub substituter) ([]byte, error) {
	pairs := strings.Split(string(body), "&")
	for i, p := range pairs {
		k, v, _ := strings.Cut(p, "=")
		val, err := url.QueryUnescape(v)
		if err != nil {
			continue // not ours to judge: Exotel will
		}
		nv, ok, err := sub(val)
		if err != nil {
			return nil, err
		}
		if ok {
			pairs[i] = k + "=" + url.QueryEscape(nv)
		}
	}
	return []byte(strings.Join(pairs, "&")), nil
}

// substituteJSON replaces string values anywhere in the document.
func substituteJSON(body []byte, sub substituter) ([]byte, error) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return body, nil // not JSON after all: forwarded as it is
	}
	changed := false
	var walk func(v any) (any, error)
	walk = func(v any) (any, error) {
		switch t := v.(type) {
		case string:
			nv, ok, err := sub(t)
			changed = changed || ok
			return nv, err
		case map[string]any:
			for k, e := range t {
				nv, err := walk(e)
				if err != nil {
					return nil, err
				}
				t[k] = nv
			}
		case []any:
			for i, e := range t {
				nv, err := walk(e)
				if err != nil {
					return nil, err
				}
				t[i] = nv
			}
		}
		return v, nil
	}
	doc, err := walk(doc)
	if err != nil || !changed {
		return body, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// substituteMultipart rewrites the form's text fields under the same
// boundary; files are copied as they are.
func substituteMultipart(body []byte, boundary string, sub substituter) ([]byte, error) {
	if boundary == "" {
		return body, nil
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if err := w.SetBoundary(boundary); err != nil {
		return body, nil
	}
	changed := false
	for {
		part, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return body, nil // malformed: Exotel will say so
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return body, nil
		}
		if part.FileName() == "" {
			nv, ok, err := sub(string(data))
			if err != nil {
				return nil, err
			}
			if ok {
				data, changed = []byte(nv), true
			}
		}
		pw, err := w.CreatePart(part.Header)
		if err != nil {
			return nil, fmt.Errorf("multipart: %w", err)
		}
		_, _ = pw.Write(data)
	}
	if !changed {
		// Rebuilt, the body could differ (a preamble, an epilogue, or no
		// part at all): it is forwarded as it came.
		return body, nil
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
