package webhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
)

// ErrPayload is ParseCallback's answer for a body that is not a valid
// callback of the route's kind.
var ErrPayload = errors.New("webhooks: not a valid callback")

// callStatuses and smsStatuses are the Status words a callback may carry;
// the final ones end the call's or message's story.
var (
	callStatuses = map[string]bool{ // value: final
		"queued": false, "ringing": false, "in-progress": false,
		"completed": true, "failed": true, "busy": true, "no-answer": true, "canceled": true,
	}
	smsStatuses = map[string]bool{
		"queued": false, "sending": false, "submitted": false,
		"sent": true, "delivered": true, "failed": true, "failed-dnd": true, "undelivered": true,
	}
)

// maxFields bounds the fields of one callback: Exotel sends about twenty.
const maxFields = 256

// ParseCallback checks that body, sent with contentType, is a callback of
// kind as Exotel sends it (multipart/form-data, JSON or
// application/x-www-form-urlencoded) and returns what identifies it. A call
// callback needs CallSid and a known Status (and EventType, if present,
// answered or terminal); an SMS report needs SmsSid and a known Status.
// Every error wraps ErrPayload.
func ParseCallback(kind Kind, contentType string, body []byte) (Callback, error) {
	fields, err := callbackFields(contentType, body)
	if err != nil {
		return Callback{}, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	c := Callback{Kind: kind, Status: fields["Status"]}
	var known map[string]bool
	switch kind {
	case KindCall:
		c.Sid, c.EventType, known = fields["CallSid"], fields["EventType"], callStatuses
		if c.EventType != "" && c.EventType != "answered" && c.EventType != "terminal" {
			return Callback{}, fmt.Errorf("%w: unknown EventType", ErrPayload)
		}
	case KindSMS:
		c.Sid, c.DetailedStatusCode, known = fields["SmsSid"], fields["DetailedStatusCode"], smsStatuses
	default:
		return Callback{}, fmt.Errorf("%w: unknown kind %q", ErrPayload, kind)
	}
	if !validSid(c.Sid) {
		return Callback{}, fmt.Errorf("%w: missing or malformed Sid", ErrPayload)
	}
	if _, ok := known[c.Status]; !ok {
		return Callback{}, fmt.Errorf("%w: unknown Status", ErrPayload)
	}
	if len(c.DetailedStatusCode) > 16 || strings.ContainsAny(c.DetailedStatusCode, "|\x00") {
		return Callback{}, fmt.Errorf("%w: malformed DetailedStatusCode", ErrPayload)
	}
	return c, nil
}

// validSid admits Exotel's Sids (hex, letters, digits, dashes and
// underscores) and keeps the dedupe key unambiguous.
func validSid(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
		if !ok {
			return false
		}
	}
	return true
}

// judgedFields are the fields ParseCallback reads. Each may appear once,
// in any letter case: a body naming one twice could be read one way here
// and another way by the target (a form parser keeping the last value, a
// JSON decoder matching keys case-insensitively).
var judgedFields = []string{"CallSid", "SmsSid", "Status", "EventType", "DetailedStatusCode"}

// fieldNames counts the judged fields among a callback's field names.
type fieldNames map[string]int

func (f fieldNames) add(name string) error {
	for _, j := range judgedFields {
		if strings.EqualFold(name, j) {
			if f[j]++; f[j] > 1 {
				return fmt.Errorf("%s appears more than once", j)
			}
		}
	}
	return nil
}

// asciiCharsets are the charsets a callback may declare: those in which
// its ASCII field names and Sids read the same to every parser. Under
// another (UTF-16, UTF-7) a target decoding by the declared charset would
// read other fields than the ones checked here.
var asciiCharsets = map[string]bool{"utf-8": true, "us-ascii": true, "iso-8859-1": true}

// addPart counts the names a multipart part gives as any parser may read
// them: every Content-Disposition header, whatever its disposition type.
func (f fieldNames) addPart(p *multipart.Part) error {
	cds := p.Header.Values("Content-Disposition")
	if len(cds) > 1 {
		return errors.New("a part with several Content-Disposition headers")
	}
	for _, cd := range cds {
		if _, params, err := mime.ParseMediaType(cd); err == nil {
			if err := f.add(params["name"]); err != nil {
				return err
			}
		}
	}
	return nil
}

// callbackFields returns a callback's top-level fields as strings.
func callbackFields(contentType string, body []byte) (map[string]string, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("content type: %v", err)
	}
	if cs, ok := params["charset"]; ok && !asciiCharsets[strings.ToLower(cs)] {
		return nil, fmt.Errorf("charset %q", cs)
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		return formFields(body)
	case "application/json":
		return jsonFields(body)
	case "multipart/form-data":
		return multipartFields(body, params["boundary"])
	}
	return nil, fmt.Errorf("content type %q", mt)
}

func formFields(body []byte) (map[string]string, error) {
	if bytes.Count(body, []byte("&")) >= maxFields {
		return nil, errors.New("too many fields")
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	names := fieldNames{}
	out := make(map[string]string, len(v))
	for k, vs := range v {
		for range vs {
			if err := names.add(k); err != nil {
				return nil, err
			}
		}
		out[k] = vs[0]
	}
	return out, nil
}

func jsonFields(body []byte) (map[string]string, error) {
	var v map[string]json.RawMessage
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	if len(v) > maxFields {
		return nil, errors.New("too many fields")
	}
	if err := jsonNames(body); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(v))
	for k, raw := range v {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			out[k] = s
			continue
		}
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			out[k] = n.String()
		}
	}
	return out, nil
}

// jsonNames checks the top-level names of a JSON object already known to
// be valid, repeats included (which json.Unmarshal folds into one).
func jsonNames(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	names := fieldNames{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := k.(string)
		if err := names.add(name); err != nil {
			return err
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

func multipartFields(body []byte, boundary string) (map[string]string, error) {
	if boundary == "" {
		return nil, errors.New("multipart without boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	names := fieldNames{}
	out := make(map[string]string)
	for n := 0; ; n++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if n >= maxFields {
			return nil, errors.New("too many fields")
		}
		name := p.FormName()
		if err := names.addPart(p); err != nil {
			return nil, err
		}
		v, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		if _, seen := out[name]; !seen && name != "" && p.FileName() == "" {
			out[name] = string(v)
		}
	}
}
