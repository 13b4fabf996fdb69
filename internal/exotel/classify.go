package exotel

import (
	"errors"
	"strings"
)

// Errors returned by Classify. Callers tell them apart with errors.Is.
var (
	// ErrNotFound means the path is outside Exotel's API families; the
	// caller answers 404.
	ErrNotFound = errors.New("exotel: path not found")
	// ErrBadPath means the path is malformed or hostile (dot segments,
	// encoded separators or control characters, a bad account SID, a
	// second account in the path...); the caller answers 400.
	ErrBadPath = errors.New("exotel: bad request path")
	// ErrMethod means the method is not one Exotel's API uses; the caller
	// answers 405.
	ErrMethod = errors.New("exotel: method not allowed")
)

// MaxPathLen is the longest raw path Classify accepts, in bytes.
const MaxPathLen = 2048

// maxSIDLen is the longest account SID Classify accepts.
const maxSIDLen = 64

// Classify maps a method and the raw escaped request path to a Route.
//
// rawPath is the path exactly as received on the wire, before any '?'
// (for example from http.Request.RequestURI), never a decoded URL.Path:
// the checks below are about what the upstream will see.
//
// Version, "Accounts" and resource segments match case-insensitively, and
// empty segments ("//") are skipped, so /v1/Accounts/{sid}//Calls/connect.json
// is a v1 call. The account SID must be 1 to 64 characters of [A-Za-z0-9_-];
// Route.Account is the SID lower-cased (no allocation when it is already
// lower case; one when it is not).
//
// Classify returns ErrBadPath for a hostile or malformed path: one that is
// empty, does not start with a single '/', is longer than MaxPathLen, holds
// "..", a "." segment, a raw byte below 0x20 or from 0x7f up, a raw
// backslash, a malformed percent-escape, or a percent-escape that decodes to
// '.', '/', '\\', '%' (double encoding), a control character or a byte from
// 0x80 up; a bad SID; or a second "accounts" segment after the SID. A path
// starting "//" is refused too, as some URL parsers would read the next segment as a host. It returns
// ErrNotFound for a path outside the families Exotel serves, and ErrMethod
// for a method other than GET, HEAD, POST, PUT, PATCH or DELETE (matched
// exactly, as HTTP methods are case-sensitive). Path errors win over
// ErrMethod.
//
// On error the Route has only Family (when the first segment names one) and
// Shape (as ShapeOf) set, so the caller can answer in Exotel's shape; its
// Account is empty, its Host HostAPI and its Bucket BucketOther.
//
// Classify does not allocate, except to lower-case a SID holding upper case.
func Classify(method, rawPath string) (Route, error) {
	family := familyOf(rawPath)
	fail := Route{Family: family, Bucket: BucketOther, Host: HostAPI, Shape: shapeOf(family, rawPath)}
	if !pathSafe(rawPath) {
		return fail, ErrBadPath
	}

	// The first segment is the version, already read into family.
	_, i := nextSegment(rawPath, 0)
	accounts, i := nextSegment(rawPath, i)
	sid, i := nextSegment(rawPath, i)
	if family == FamilyUnknown || !equalFold(accounts, "accounts") || sid == "" {
		return fail, ErrNotFound
	}
	if !validSID(sid) {
		return fail, ErrBadPath
	}
	resource, rest := nextSegment(rawPath, i)
	if secondAccount(rawPath, i) {
		return fail, ErrBadPath
	}
	if resource == "" {
		return fail, ErrNotFound
	}
	last := isLast(rawPath, rest)

	r := Route{Family: family, Host: HostAPI, Shape: fail.Shape}
	ok := false
	name := resource
	switch family {
	case FamilyV1:
		name = trimJSON(resource, last)
		r.Bucket, ok = v1Resource(name)
	case FamilyV2Beta:
		r.Bucket = BucketOther
		name = trimJSON(resource, last)
		ok = equalFold(name, "incomingphonenumbers") || equalFold(name, "availablephonenumbers")
	case FamilyV2:
		r.Bucket, r.Host, ok = v2Resource(resource)
	case FamilyV3:
		r.Bucket, r.Host, ok = BucketVoiceV2, HostCCM, equalFold(resource, "calls")
	}
	if !ok {
		return fail, ErrNotFound
	}
	if !methodAllowed(method) {
		return fail, ErrMethod
	}
	r.Operation = operation(family, name, method, rawPath, rest)
	if r.Operation.Creates() && method != "POST" {
		// Placing a call, sending a message or buying a number is a POST
		// in Exotel's API. Any other method on such a path is refused, so
		// that GET, HEAD and OPTIONS always change nothing: a transport may
		// resend them, and a lost answer to one is a plain timeout.
		return fail, ErrMethod
	}
	r.Account = strings.ToLower(sid)
	return r, nil
}

// operation returns what a request does. resource is the resource segment
// as matched (".json" removed in v1 and v2_beta) and rest the index in
// rawPath just past it.
//
// GET and HEAD read; every other method writes. An action named in the
// path wins over the method, so that a read right never reaches an action
// whatever method carries it: v1 Calls/connect is calls.connect and v1
// Sms/send and Sms/bulksend are sms.send and sms.bulksend under any
// method. The action segment is matched as an upstream might read it:
// percent-decoded, ignoring case, ";" parameters and any "." suffix
// (connect.json, connect.xml). A write to a collection creates: in v2 and
// v3 a write to calls (or to a v3 call's legs) places a call, to messages
// sends one, to IncomingPhoneNumbers or incoming-phone-numbers buys a number.
func operation(family Family, resource, method, rawPath string, rest int) Operation {
	read := method == "GET" || method == "HEAD"
	sub, next := nextSegment(rawPath, rest)
	collection := sub == ""
	switch {
	case equalFold(resource, "calls"):
		if family == FamilyV1 {
			if actionIs(sub, "connect") {
				return OpCallsConnect
			}
			return readWrite(read, OpCallsRead, OpCallsWrite)
		}
		if read {
			return OpCallsRead
		}
		legs, after := nextSegment(rawPath, next)
		if collection || (actionIs(legs, "legs") && isLast(rawPath, after)) {
			return OpCallsConnect
		}
		return OpCallsWrite
	case equalFold(resource, "sms"):
		switch {
		case actionIs(sub, "send"):
			return OpSMSSend
		case actionIs(sub, "bulksend"):
			return OpSMSBulkSend
		}
		return readWrite(read, OpSMSRead, OpSMSWrite)
	case equalFold(resource, "messages"):
		return createReadWrite(read, collection, OpWhatsAppSend, OpWhatsAppRead, OpWhatsAppWrite)
	case equalFold(resource, "numbers"):
		return readWrite(read, OpNumbersRead, OpNumbersWrite)
	case equalFold(resource, "incomingphonenumbers"), equalFold(resource, "incoming-phone-numbers"):
		return createReadWrite(read, collection, OpNumbersBuy, OpNumbersRead, OpNumbersWrite)
	case equalFold(resource, "availablephonenumbers"):
		return readWrite(read, OpNumbersRead, OpNumbersBuy)
	case equalFold(resource, "customerwhitelist"):
		return readWrite(read, OpWhitelistRead, OpWhitelistWrite)
	case equalFold(resource, "users"):
		return readWrite(read, OpUsersRead, OpUsersWrite)
	case equalFold(resource, "campaigns"), equalFold(resource, "sms-campaigns"), equalFold(resource, "message-campaigns"):
		return readWrite(read, OpCampaignsRead, OpCampaignsWrite)
	case equalFold(resource, "lists"), equalFold(resource, "contacts"):
		return readWrite(read, OpContactsRead, OpContactsWrite)
	case equalFold(resource, "trunks"):
		return readWrite(read, OpTrunksRead, OpTrunksWrite)
	}
	// Unreachable for a resource Classify matched; OpNone is in no
	// caller's rights.
	return OpNone
}

func readWrite(read bool, r, w Operation) Operation {
	if read {
		return r
	}
	return w
}

func createReadWrite(read, collection bool, c, r, w Operation) Operation {
	switch {
	case read:
		return r
	case collection:
		return c
	}
	return w
}

// actionIs reports whether a path segment names the action word as an
// upstream might read it: percent-decoded, ignoring ASCII case, ";"
// parameters and everything from the first ".". seg's escapes are well
// formed (pathSafe checked them).
func actionIs(seg, word string) bool {
	if k := strings.IndexByte(seg, ';'); k >= 0 {
		seg = seg[:k]
	}
	if k := strings.IndexByte(seg, '.'); k >= 0 {
		seg = seg[:k]
	}
	return seg != "" && decodedEqualFold(seg, word)
}

// ShapeOf returns the body shape a caller of rawPath most likely expects,
// judged from the path alone: a first segment of v2 or v3 gives ShapeV2; v1
// gives ShapeJSON when the last segment ends in ".json" and ShapeXML when it
// does not; anything else, v2_beta included, gives ShapeJSON. Segments match
// case-insensitively and empty segments are skipped, as in Classify.
func ShapeOf(rawPath string) Shape {
	return shapeOf(familyOf(rawPath), rawPath)
}

// shapeOf is ShapeOf for a path whose family is already known.
func shapeOf(family Family, rawPath string) Shape {
	switch family {
	case FamilyV2, FamilyV3:
		return ShapeV2
	case FamilyV1:
		end := len(rawPath)
		for end > 0 && rawPath[end-1] == '/' {
			end--
		}
		if hasSuffixFold(rawPath[:end], ".json") {
			return ShapeJSON
		}
		return ShapeXML
	}
	return ShapeJSON
}

// familyOf returns the family named by the first non-empty segment.
func familyOf(rawPath string) Family {
	seg, _ := nextSegment(rawPath, 0)
	switch {
	case equalFold(seg, "v1"):
		return FamilyV1
	case equalFold(seg, "v2_beta"):
		return FamilyV2Beta
	case equalFold(seg, "v2"):
		return FamilyV2
	case equalFold(seg, "v3"):
		return FamilyV3
	}
	return FamilyUnknown
}

// v1Resource returns the bucket of a v1 resource name (without ".json").
func v1Resource(name string) (Bucket, bool) {
	switch {
	case equalFold(name, "calls"),
		equalFold(name, "numbers"),
		equalFold(name, "customerwhitelist"):
		return BucketVoiceV1, true
	case equalFold(name, "sms"):
		return BucketSMS, true
	}
	return BucketOther, false
}

// v2Resource returns the bucket and host of a v2 resource name.
func v2Resource(name string) (Bucket, Host, bool) {
	switch {
	case equalFold(name, "calls"), equalFold(name, "users"):
		return BucketVoiceV2, HostCCM, true
	case equalFold(name, "messages"):
		return BucketWhatsApp, HostAPI, true
	case equalFold(name, "campaigns"),
		equalFold(name, "lists"),
		equalFold(name, "contacts"),
		equalFold(name, "sms-campaigns"),
		equalFold(name, "message-campaigns"),
		equalFold(name, "incoming-phone-numbers"),
		equalFold(name, "trunks"):
		return BucketOther, HostAPI, true
	}
	return BucketOther, HostAPI, false
}

// methodAllowed reports whether Exotel's API uses method.
func methodAllowed(method string) bool {
	switch method {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE":
		return true
	}
	return false
}

// nextSegment returns the first non-empty segment of p at or after byte i,
// skipping slashes, and the index just past it. It returns "" at the end.
func nextSegment(p string, i int) (seg string, next int) {
	for i < len(p) && p[i] == '/' {
		i++
	}
	start := i
	for i < len(p) && p[i] != '/' {
		i++
	}
	return p[start:i], i
}

// isLast reports whether nothing but slashes follows byte i of p.
func isLast(p string, i int) bool {
	for ; i < len(p); i++ {
		if p[i] != '/' {
			return false
		}
	}
	return true
}

// trimJSON removes a ".json" suffix (any case) from the last segment.
func trimJSON(seg string, last bool) string {
	if last && len(seg) > len(".json") && hasSuffixFold(seg, ".json") {
		return seg[:len(seg)-len(".json")]
	}
	return seg
}

// equalFold reports whether s equals the lower-case ASCII word t, ignoring
// ASCII case. It is strings.EqualFold without the Unicode cases, which the
// words matched here do not need.
func equalFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != t[i] {
			return false
		}
	}
	return true
}

// hasSuffixFold is strings.HasSuffix ignoring ASCII case.
func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && equalFold(s[len(s)-len(suffix):], suffix)
}

// validSID reports whether s is 1 to maxSIDLen bytes of [A-Za-z0-9_-].
func validSID(s string) bool {
	if len(s) == 0 || len(s) > maxSIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// secondAccount reports whether any segment of p from byte i on reads
// "accounts" once percent-decoded, ignoring case and any ";" parameters: an
// upstream that routes on the decoded path could take a second SID from it.
func secondAccount(p string, i int) bool {
	for {
		var seg string
		seg, i = nextSegment(p, i)
		if seg == "" {
			return false
		}
		if k := strings.IndexByte(seg, ';'); k >= 0 {
			seg = seg[:k]
		}
		if decodedEqualFold(seg, "accounts") {
			return true
		}
	}
}

// decodedEqualFold reports whether the percent-decoding of seg equals the
// lower-case ASCII word, ignoring ASCII case. seg's escapes are well formed
// (pathSafe checked them).
func decodedEqualFold(seg, word string) bool {
	j := 0
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c == '%' && i+2 < len(seg) {
			hi, _ := unhex(seg[i+1])
			lo, _ := unhex(seg[i+2])
			c = hi<<4 | lo
			i += 2
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if j >= len(word) || c != word[j] {
			return false
		}
		j++
	}
	return j == len(word)
}

// pathSafe reports whether p passes the hostile-input checks documented on
// Classify (everything but the SID and second-account checks).
func pathSafe(p string) bool {
	if len(p) == 0 || len(p) > MaxPathLen || p[0] != '/' || (len(p) > 1 && p[1] == '/') {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if pathByte[c] {
			continue
		}
		switch c {
		case '%':
			if i+2 >= len(p) {
				return false
			}
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if !ok1 || !ok2 {
				return false
			}
			// Escapes that decode to separators, dots or control bytes
			// let a path mean one thing here and another upstream; bytes
			// from 0x80 up cover overlong UTF-8 such as %c0%ae; an encoded
			// '%' hides any of these from an upstream that decodes twice,
			// and an encoded '#' or ';' would end the path or start its
			// parameters there.
			d := hi<<4 | lo
			if d < 0x20 || d >= 0x7f || d == '.' || d == '/' || d == '\\' || d == '%' || d == '#' || d == ';' {
				return false
			}
			i += 2
		case '.':
			if i+1 < len(p) && p[i+1] == '.' {
				return false
			}
			// p[0] is '/', so i >= 1 here.
			if p[i-1] == '/' && (i+1 == len(p) || p[i+1] == '/') {
				return false
			}
		default:
			// Anything else is not a path character (RFC 3986 §3.3), or
			// one Exotel's API never uses and an upstream may read as the
			// path's end: '#' (a fragment), ';' (path parameters, which
			// servers strip), quotes, brackets, '\\', controls, non-ASCII.
			return false
		}
	}
	return true
}

// pathByte marks the bytes a path may hold as they are: RFC 3986's
// unreserved characters, its sub-delimiters but ';', ':', '@' and '/'.
// '%' and '.' are checked apart.
var pathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-_~!$&'()*+,=:@/" {
		t[c] = true
	}
	return t
}()

// unhex returns the value of the hex digit c.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
