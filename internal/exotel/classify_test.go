package exotel

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

// classifyCase is one row of the Classify table; the fuzz target seeds its
// corpus from the same rows.
type classifyCase struct {
	name   string
	method string
	path   string
	want   Route // on error only Family and Shape are compared
	err    error
}

func classifyCases() []classifyCase {
	v1 := func(sid string, b Bucket, s Shape) Route {
		return Route{Account: sid, Family: FamilyV1, Bucket: b, Host: HostAPI, Shape: s}
	}
	beta := func(sid string) Route {
		return Route{Account: sid, Family: FamilyV2Beta, Bucket: BucketOther, Host: HostAPI, Shape: ShapeJSON}
	}
	v2 := func(sid string, b Bucket, h Host) Route {
		return Route{Account: sid, Family: FamilyV2, Bucket: b, Host: h, Shape: ShapeV2}
	}
	v3 := func(sid string) Route {
		return Route{Account: sid, Family: FamilyV3, Bucket: BucketVoiceV2, Host: HostCCM, Shape: ShapeV2}
	}
	// bad is an error row: only Family and Shape are meaningful.
	bad := func(f Family, s Shape) Route { return Route{Family: f, Shape: s} }

	return []classifyCase{
		// Voice v1.
		{"v1/connect.json", "POST", "/v1/Accounts/exotel/Calls/connect.json", v1("exotel", BucketVoiceV1, ShapeJSON), nil},
		{"v1/connect xml", "POST", "/v1/Accounts/exotel/Calls/connect", v1("exotel", BucketVoiceV1, ShapeXML), nil},
		{"v1/connect double slash", "POST", "/v1/Accounts/acme1m//Calls/connect.json", v1("acme1m", BucketVoiceV1, ShapeJSON), nil},
		{"v1/Calls.json listing", "GET", "/v1/Accounts/exotel/Calls.json", v1("exotel", BucketVoiceV1, ShapeJSON), nil},
		{"v1/Calls listing xml", "GET", "/v1/Accounts/exotel/Calls", v1("exotel", BucketVoiceV1, ShapeXML), nil},
		{"v1/Calls.JSON upper suffix", "GET", "/v1/Accounts/exotel/Calls.JSON", v1("exotel", BucketVoiceV1, ShapeJSON), nil},
		{"v1/call details json", "GET", "/v1/Accounts/exotel/Calls/b6cfaf0b3f4f47d1b7f9e3c5a2f0d1e2.json", v1("exotel", BucketVoiceV1, ShapeJSON), nil},
		{"v1/call details xml", "GET", "/v1/Accounts/exotel/Calls/b6cfaf0b3f4f47d1b7f9e3c5a2f0d1e2", v1("exotel", BucketVoiceV1, ShapeXML), nil},
		{"v1/calls trailing slash", "GET", "/v1/Accounts/exotel/Calls/", v1("exotel", BucketVoiceV1, ShapeXML), nil},
		{"v1/calls.json trailing slash", "GET", "/v1/Accounts/exotel/Calls.json/", v1("exotel", BucketVoiceV1, ShapeJSON), nil},
		{"v1/lower case accounts and calls", "GET", "/v1/accounts/exotel/calls.json", v1("exotel", BucketVoiceV1, ShapeJSON), nil},
		{"v1/upper case everything", "GET", "/V1/ACCOUNTS/EXOTEL/CALLS.JSON", v1("exotel", BucketVoiceV1, ShapeJSON), nil},
		{"v1/mixed case sid lowered", "GET", "/v1/Accounts/AcMe_1-M/Calls.json", v1("acme_1-m", BucketVoiceV1, ShapeJSON), nil},
		{"v1/numbers", "GET", "/v1/Accounts/exotel/Numbers/09876543210", v1("exotel", BucketVoiceV1, ShapeXML), nil},
		{"v1/numbers json", "GET", "/v1/Accounts/exotel/Numbers/09876543210.json", v1("exotel", BucketVoiceV1, ShapeJSON), nil},
		{"v1/numbers encoded plus", "GET", "/v1/Accounts/exotel/Numbers/%2B919876543210", v1("exotel", BucketVoiceV1, ShapeXML), nil},
		{"v1/numbers encoded space", "GET", "/v1/Accounts/exotel/Numbers/%2091%209876", v1("exotel", BucketVoiceV1, ShapeXML), nil},
		{"v1/customer whitelist", "POST", "/v1/Accounts/exotel/CustomerWhitelist", v1("exotel", BucketVoiceV1, ShapeXML), nil},
		{"v1/customer whitelist json", "POST", "/v1/Accounts/exotel/CustomerWhitelist.json", v1("exotel", BucketVoiceV1, ShapeJSON), nil},
		{"v1/customer whitelist number", "DELETE", "/v1/Accounts/exotel/customerwhitelist/09876543210", v1("exotel", BucketVoiceV1, ShapeXML), nil},
		// SMS v1.
		{"v1/Sms send json", "POST", "/v1/Accounts/exotel/Sms/send.json", v1("exotel", BucketSMS, ShapeJSON), nil},
		{"v1/Sms send xml", "POST", "/v1/Accounts/exotel/Sms/send", v1("exotel", BucketSMS, ShapeXML), nil},
		{"v1/Sms bulksend", "POST", "/v1/Accounts/exotel/Sms/bulksend.json", v1("exotel", BucketSMS, ShapeJSON), nil},
		{"v1/SMS details", "GET", "/v1/Accounts/exotel/SMS/Messages/a1b2c3.json", v1("exotel", BucketSMS, ShapeJSON), nil},
		{"v1/Sms details", "GET", "/v1/Accounts/exotel/Sms/Messages/a1b2c3", v1("exotel", BucketSMS, ShapeXML), nil},
		{"v1/sms lower", "GET", "/v1/accounts/exotel/sms/messages/a1b2c3.json", v1("exotel", BucketSMS, ShapeJSON), nil},
		{"v1/Sms double slash", "POST", "/v1/Accounts/exotel//Sms//send.json", v1("exotel", BucketSMS, ShapeJSON), nil},
		// ExoPhones v2_beta.
		{"v2_beta/incoming", "GET", "/v2_beta/Accounts/exotel/IncomingPhoneNumbers", beta("exotel"), nil},
		{"v2_beta/incoming sid", "PUT", "/v2_beta/Accounts/exotel/IncomingPhoneNumbers/0e4c1a", beta("exotel"), nil},
		{"v2_beta/incoming json", "GET", "/v2_beta/Accounts/exotel/IncomingPhoneNumbers.json", beta("exotel"), nil},
		{"v2_beta/available", "GET", "/v2_beta/Accounts/exotel/AvailablePhoneNumbers/IN/Landline", beta("exotel"), nil},
		{"v2_beta/lower case", "GET", "/v2_beta/accounts/exotel/availablephonenumbers", beta("exotel"), nil},
		{"v2_beta/upper version", "GET", "/V2_BETA/Accounts/exotel/IncomingPhoneNumbers", beta("exotel"), nil},
		// Voice v2, users, WhatsApp, other v2.
		{"v2/calls", "POST", "/v2/accounts/exotel/calls", v2("exotel", BucketVoiceV2, HostCCM), nil},
		{"v2/call id", "GET", "/v2/accounts/exotel/calls/abc123", v2("exotel", BucketVoiceV2, HostCCM), nil},
		{"v2/Accounts Calls", "GET", "/v2/Accounts/Exotel/Calls", v2("exotel", BucketVoiceV2, HostCCM), nil},
		{"v2/users", "GET", "/v2/accounts/exotel/users", v2("exotel", BucketVoiceV2, HostCCM), nil},
		{"v2/user id", "PATCH", "/v2/accounts/exotel/users/u1", v2("exotel", BucketVoiceV2, HostCCM), nil},
		{"v2/messages", "POST", "/v2/accounts/exotel/messages", v2("exotel", BucketWhatsApp, HostAPI), nil},
		{"v2/campaigns", "POST", "/v2/accounts/exotel/campaigns", v2("exotel", BucketOther, HostAPI), nil},
		{"v2/lists", "GET", "/v2/accounts/exotel/lists/l1/contacts", v2("exotel", BucketOther, HostAPI), nil},
		{"v2/contacts", "POST", "/v2/accounts/exotel/contacts", v2("exotel", BucketOther, HostAPI), nil},
		{"v2/sms-campaigns", "POST", "/v2/accounts/exotel/sms-campaigns", v2("exotel", BucketOther, HostAPI), nil},
		{"v2/message-campaigns", "POST", "/v2/accounts/exotel/message-campaigns", v2("exotel", BucketOther, HostAPI), nil},
		{"v2/incoming-phone-numbers", "GET", "/v2/accounts/exotel/incoming-phone-numbers", v2("exotel", BucketOther, HostAPI), nil},
		{"v2/trunks", "GET", "/v2/accounts/exotel/trunks/t1/whitelisted-ips", v2("exotel", BucketOther, HostAPI), nil},
		{"v2/double slash", "GET", "/v2/accounts//exotel//calls", v2("exotel", BucketVoiceV2, HostCCM), nil},
		// Voice v3.
		{"v3/calls", "POST", "/v3/accounts/exotel/calls", v3("exotel"), nil},
		{"v3/call legs", "GET", "/v3/accounts/exotel/calls/c1/legs", v3("exotel"), nil},
		{"v3/upper case", "GET", "/V3/ACCOUNTS/exotel/CALLS/c1", v3("exotel"), nil},
		// Methods.
		{"method/HEAD", "HEAD", "/v1/Accounts/exotel/Calls.json", v1("exotel", BucketVoiceV1, ShapeJSON), nil},
		{"method/PUT", "PUT", "/v1/Accounts/exotel/Calls.json", v1("exotel", BucketVoiceV1, ShapeJSON), nil},
		{"method/CONNECT", "CONNECT", "/v1/Accounts/exotel/Calls.json", bad(FamilyV1, ShapeJSON), ErrMethod},
		{"method/TRACE xml", "TRACE", "/v1/Accounts/exotel/Calls", bad(FamilyV1, ShapeXML), ErrMethod},
		{"method/OPTIONS v2", "OPTIONS", "/v2/accounts/exotel/calls", bad(FamilyV2, ShapeV2), ErrMethod},
		{"method/unknown", "BREW", "/v2_beta/Accounts/exotel/IncomingPhoneNumbers", bad(FamilyV2Beta, ShapeJSON), ErrMethod},
		{"method/lower case get", "get", "/v1/Accounts/exotel/Calls.json", bad(FamilyV1, ShapeJSON), ErrMethod},
		{"method/empty", "", "/v3/accounts/exotel/calls", bad(FamilyV3, ShapeV2), ErrMethod},
		{"method/path error wins", "TRACE", "/v1/Accounts/exotel/Foo.json", bad(FamilyV1, ShapeJSON), ErrNotFound},
		// Not found.
		{"notfound/root", "GET", "/", bad(FamilyUnknown, ShapeJSON), ErrNotFound},
		{"notfound/healthz", "GET", "/healthz", bad(FamilyUnknown, ShapeJSON), ErrNotFound},
		{"notfound/v1", "GET", "/v1", bad(FamilyV1, ShapeXML), ErrNotFound},
		{"notfound/v1 slash", "GET", "/v1/", bad(FamilyV1, ShapeXML), ErrNotFound},
		{"notfound/v1 accounts", "GET", "/v1/Accounts", bad(FamilyV1, ShapeXML), ErrNotFound},
		{"notfound/v1 accounts slash", "GET", "/v1/Accounts/", bad(FamilyV1, ShapeXML), ErrNotFound},
		{"notfound/v1 bare account", "GET", "/v1/Accounts/exotel", bad(FamilyV1, ShapeXML), ErrNotFound},
		{"notfound/v1 bare account slash", "GET", "/v1/Accounts/exotel/", bad(FamilyV1, ShapeXML), ErrNotFound},
		{"notfound/v1 other resource", "GET", "/v1/Accounts/exotel/Recordings/r1", bad(FamilyV1, ShapeXML), ErrNotFound},
		{"notfound/v1 other resource json", "GET", "/v1/Accounts/exotel/Recordings.json", bad(FamilyV1, ShapeJSON), ErrNotFound},
		{"notfound/v1 json not last", "GET", "/v1/Accounts/exotel/Calls.json/c1", bad(FamilyV1, ShapeXML), ErrNotFound},
		{"notfound/v1 not accounts", "GET", "/v1/Users/exotel/Calls.json", bad(FamilyV1, ShapeJSON), ErrNotFound},
		{"notfound/v1 encoded resource", "GET", "/v1/Accounts/exotel/%43alls.json", bad(FamilyV1, ShapeJSON), ErrNotFound},
		{"notfound/v2_beta other", "GET", "/v2_beta/Accounts/exotel/Calls", bad(FamilyV2Beta, ShapeJSON), ErrNotFound},
		{"notfound/v2 bare account", "GET", "/v2/accounts/exotel", bad(FamilyV2, ShapeV2), ErrNotFound},
		{"notfound/v2 other", "GET", "/v2/accounts/exotel/recordings", bad(FamilyV2, ShapeV2), ErrNotFound},
		{"notfound/v2 calls.json", "GET", "/v2/accounts/exotel/calls.json", bad(FamilyV2, ShapeV2), ErrNotFound},
		{"notfound/v2 sms", "POST", "/v2/accounts/exotel/sms", bad(FamilyV2, ShapeV2), ErrNotFound},
		{"notfound/v3 users", "GET", "/v3/accounts/exotel/users", bad(FamilyV3, ShapeV2), ErrNotFound},
		{"notfound/v3 bare", "GET", "/v3", bad(FamilyV3, ShapeV2), ErrNotFound},
		{"notfound/v4", "GET", "/v4/accounts/exotel/calls", bad(FamilyUnknown, ShapeJSON), ErrNotFound},
		{"notfound/v1.json", "GET", "/v1.json", bad(FamilyUnknown, ShapeJSON), ErrNotFound},
		{"notfound/no version", "GET", "/Accounts/exotel/Calls.json", bad(FamilyUnknown, ShapeJSON), ErrNotFound},
		{"notfound/encoded version", "GET", "/%761/Accounts/exotel/Calls.json", bad(FamilyUnknown, ShapeJSON), ErrNotFound},
		// Bad SIDs.
		{"badsid/too long", "GET", "/v1/Accounts/" + strings.Repeat("a", 65) + "/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"badsid/dot json", "GET", "/v1/Accounts/exotel.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"badsid/encoded", "GET", "/v1/Accounts/%65xotel/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"badsid/plus", "GET", "/v1/Accounts/exo+tel/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"badsid/at", "GET", "/v2/accounts/exo@tel/calls", bad(FamilyV2, ShapeV2), ErrBadPath},
		{"badsid/semicolon", "GET", "/v2/accounts/exotel;x=1/calls", bad(FamilyV2, ShapeV2), ErrBadPath},
		// Hostile paths.
		{"hostile/empty", "GET", "", bad(FamilyUnknown, ShapeJSON), ErrBadPath},
		{"hostile/no leading slash", "GET", "v1/Accounts/exotel/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/absolute URL", "GET", "http://evil.example/v1/Accounts/exotel/Calls.json", bad(FamilyUnknown, ShapeJSON), ErrBadPath},
		{"hostile/asterisk", "OPTIONS", "*", bad(FamilyUnknown, ShapeJSON), ErrBadPath},
		{"hostile/leading double slash", "GET", "//v1/Accounts/exotel/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/leading double slash host", "GET", "//evil.example/v1/Accounts/exotel/Calls.json", bad(FamilyUnknown, ShapeJSON), ErrBadPath},
		{"hostile/dotdot segment", "GET", "/v1/Accounts/exotel/../other/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/dotdot at end", "GET", "/v1/Accounts/exotel/Calls/..", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/dotdot inside segment", "GET", "/v1/Accounts/exotel/Calls/a..b", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/dot segment", "GET", "/v1/Accounts/exotel/./Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/dot at end", "GET", "/v1/Accounts/exotel/Calls/.", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/dot first", "GET", "/./v1/Accounts/exotel/Calls.json", bad(FamilyUnknown, ShapeJSON), ErrBadPath},
		{"hostile/%2e lower", "GET", "/v1/Accounts/exotel/%2e%2e/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/%2E upper", "GET", "/v1/Accounts/exotel/%2E%2E/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/%2e single", "GET", "/v1/Accounts/exotel/Calls%2ejson", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/dot %2e", "GET", "/v1/Accounts/exotel/.%2e/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/%2f lower", "GET", "/v1/Accounts/exotel%2fother/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/%2F upper", "GET", "/v1/Accounts/exotel/Calls%2F..%2Fx", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/%5c", "GET", "/v1/Accounts/exotel/Calls%5c..", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/%5C", "GET", "/v1/Accounts/exotel/Calls%5C", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/%00", "GET", "/v1/Accounts/exotel/Calls.json%00", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/%0a", "GET", "/v1/Accounts/exotel/Calls%0a.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/%0d", "GET", "/v1/Accounts/exotel/Calls%0d.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/%0D%0A", "GET", "/v2/accounts/exotel/calls%0D%0AX-Injected:%201", bad(FamilyV2, ShapeV2), ErrBadPath},
		{"hostile/%09", "GET", "/v2/accounts/exotel/calls%09", bad(FamilyV2, ShapeV2), ErrBadPath},
		{"hostile/%1f", "GET", "/v2/accounts/exotel/calls/%1f", bad(FamilyV2, ShapeV2), ErrBadPath},
		{"hostile/%7f", "GET", "/v2/accounts/exotel/calls/%7f", bad(FamilyV2, ShapeV2), ErrBadPath},
		{"hostile/%80", "GET", "/v2/accounts/exotel/calls/%80", bad(FamilyV2, ShapeV2), ErrBadPath},
		{"hostile/%ff", "GET", "/v2/accounts/exotel/calls/%ff", bad(FamilyV2, ShapeV2), ErrBadPath},
		{"hostile/overlong dot %c0%ae", "GET", "/v1/Accounts/exotel/%c0%ae%c0%ae/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/overlong slash %c0%af", "GET", "/v1/Accounts/exotel/Calls%c0%af", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/encoded utf8", "GET", "/v2/accounts/exotel/calls/%e2%80%a8", bad(FamilyV2, ShapeV2), ErrBadPath},
		{"hostile/%zz", "GET", "/v1/Accounts/exotel/Calls%zz", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/%2 half escape", "GET", "/v1/Accounts/exotel/Calls/%2", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/%g1", "GET", "/v1/Accounts/exotel/Calls/%g1.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/trailing %", "GET", "/v1/Accounts/exotel/Calls%", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/raw NUL", "GET", "/v1/Accounts/exotel/Calls\x00.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/raw newline", "GET", "/v1/Accounts/exotel/Calls\n.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/raw CR", "GET", "/v1/Accounts/exotel/Calls\r.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/raw tab", "GET", "/v1/Accounts/exotel/Calls\t", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/raw DEL", "GET", "/v1/Accounts/exotel/Calls\x7f", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/raw backslash", "GET", "/v1/Accounts/exotel\\..\\other/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/raw backslash alone", "GET", "/v1/Accounts/exotel/Calls\\x", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/raw utf8", "GET", "/v1/Accounts/exotel/Calls/\u00e9.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/raw high byte", "GET", "/v1/Accounts/exotel/Calls/\xff", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/raw overlong dot", "GET", "/v1/Accounts/exotel/\xc0\xae\xc0\xae/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/second Accounts", "GET", "/v1/Accounts/mine/Accounts/theirs/Calls.json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		{"hostile/second accounts later", "GET", "/v1/Accounts/mine/Calls/accounts/theirs", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/second accounts v2", "GET", "/v2/accounts/mine/calls/accounts/theirs/calls", bad(FamilyV2, ShapeV2), ErrBadPath},
		{"hostile/second ACCOUNTS v3", "GET", "/v3/accounts/mine//ACCOUNTS/theirs/calls", bad(FamilyV3, ShapeV2), ErrBadPath},
		{"hostile/second accounts encoded", "GET", "/v1/Accounts/mine/Calls/%41ccounts/theirs", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/second accounts params", "GET", "/v1/Accounts/mine/Calls/Accounts;x/theirs", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/second accounts last", "GET", "/v2/accounts/mine/users/accounts", bad(FamilyV2, ShapeV2), ErrBadPath},
		{"hostile/too long", "GET", "/v1/Accounts/exotel/Calls/" + strings.Repeat("a", MaxPathLen) + ".json", bad(FamilyV1, ShapeJSON), ErrBadPath},
		// Limits that pass.
		{"limit/sid 64", "GET", "/v1/Accounts/" + strings.Repeat("a", 64) + "/Calls.json", v1(strings.Repeat("a", 64), BucketVoiceV1, ShapeJSON), nil},
		{"limit/path 2048", "GET", longPath(MaxPathLen), v1("exotel", BucketVoiceV1, ShapeXML), nil},
		{"limit/path 2049", "GET", longPath(MaxPathLen + 1), bad(FamilyV1, ShapeXML), ErrBadPath},
		{"limit/segment accounts-like", "GET", "/v1/Accounts/exotel/Calls/accountsx", v1("exotel", BucketVoiceV1, ShapeXML), nil},
		{"limit/dot inside segment", "GET", "/v1/Accounts/exotel/Calls/a.b.json", v1("exotel", BucketVoiceV1, ShapeJSON), nil},
		{"limit/dot-prefixed segment", "GET", "/v1/Accounts/exotel/Calls/.hidden", v1("exotel", BucketVoiceV1, ShapeXML), nil},
		{"hostile/encoded percent", "GET", "/v1/Accounts/exotel/Numbers/100%25", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"hostile/double-encoded dot dot", "GET", "/v1/Accounts/exotel/Calls/%252e%252e/x", bad(FamilyV1, ShapeXML), ErrBadPath},
		{"limit/encoded tilde", "GET", "/v2/accounts/exotel/calls/%7E", v2("exotel", BucketVoiceV2, HostCCM), nil},
	}
}

// longPath returns a v1 Calls path of exactly n bytes.
func longPath(n int) string {
	p := "/v1/Accounts/exotel/Calls/"
	return p + strings.Repeat("a", n-len(p))
}

func TestClassify(t *testing.T) {
	for _, tc := range classifyCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Classify(tc.method, tc.path)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Classify(%q, %q) error = %v, want %v", tc.method, tc.path, err, tc.err)
				}
				want := Route{Family: tc.want.Family, Bucket: BucketOther, Host: HostAPI, Shape: tc.want.Shape}
				if got != want {
					t.Errorf("Classify(%q, %q) on error = %+v, want %+v", tc.method, tc.path, got, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Classify(%q, %q) error = %v, want nil", tc.method, tc.path, err)
			}
			// Operations have their own table (TestClassifyOperation).
			if got.Operation == OpNone {
				t.Errorf("Classify(%q, %q) has no operation", tc.method, tc.path)
			}
			got.Operation = OpNone
			if got != tc.want {
				t.Errorf("Classify(%q, %q) = %+v, want %+v", tc.method, tc.path, got, tc.want)
			}
		})
	}
}

// operationCases map requests to operations: every row of the README's
// table of operations, and the paths that must not slip into a lesser one.
var operationCases = []struct {
	method, path string
	want         Operation
}{
	// v1 calls.
	{"POST", "/v1/Accounts/acme/Calls/connect.json", OpCallsConnect},
	{"POST", "/v1/Accounts/acme/Calls/connect", OpCallsConnect},
	{"POST", "/v1/Accounts/acme//Calls//connect.json/", OpCallsConnect},
	{"POST", "/v1/Accounts/acme/Calls/CONNECT.JSON", OpCallsConnect},   // matched ignoring case
	{"POST", "/v1/Accounts/acme/Calls/conn%65ct.json", OpCallsConnect}, // as an upstream that decodes reads it
	{"POST", "/v1/Accounts/acme/Calls/connect.xml", OpCallsConnect},
	{"POST", "/v1/Accounts/acme/Calls/connect/x", OpCallsConnect},
	{"GET", "/v1/Accounts/acme/Calls.json", OpCallsRead},
	{"GET", "/v1/Accounts/acme/Calls/b6cfaf0b3f4f47d1.json", OpCallsRead},
	{"HEAD", "/v1/Accounts/acme/Calls", OpCallsRead},
	{"GET", "/v1/Accounts/acme/Calls/connectx.json", OpCallsRead},
	{"POST", "/v1/Accounts/acme/Calls/b6cfaf0b3f4f47d1.json", OpCallsWrite},
	{"DELETE", "/v1/Accounts/acme/Calls.json", OpCallsWrite},
	// v1 SMS.
	{"POST", "/v1/Accounts/acme/Sms/send.json", OpSMSSend},
	{"POST", "/v1/Accounts/acme/SMS/Send.json", OpSMSSend},
	{"POST", "/v1/Accounts/acme/Sms/bulksend.json", OpSMSBulkSend},
	{"POST", "/v1/Accounts/acme/Sms/bulks%65nd", OpSMSBulkSend},
	{"GET", "/v1/Accounts/acme/SMS/Messages/a1b2c3.json", OpSMSRead},
	{"GET", "/v1/Accounts/acme/Sms/Messages/a1b2c3", OpSMSRead},
	{"POST", "/v1/Accounts/acme/SMS/Messages/a1b2c3.json", OpSMSWrite},
	// Numbers and ExoPhones.
	{"GET", "/v1/Accounts/acme/Numbers/09876543210.json", OpNumbersRead},
	{"POST", "/v1/Accounts/acme/Numbers/09876543210", OpNumbersWrite},
	{"GET", "/v2_beta/Accounts/acme/IncomingPhoneNumbers.json", OpNumbersRead},
	{"GET", "/v2_beta/Accounts/acme/IncomingPhoneNumbers/PN1", OpNumbersRead},
	{"POST", "/v2_beta/Accounts/acme/IncomingPhoneNumbers", OpNumbersBuy},
	{"POST", "/v2_beta/Accounts/acme/IncomingPhoneNumbers.json", OpNumbersBuy},
	{"POST", "/v2_beta/Accounts/acme/IncomingPhoneNumbers/", OpNumbersBuy},
	{"PUT", "/v2_beta/Accounts/acme/IncomingPhoneNumbers/PN1", OpNumbersWrite},
	{"DELETE", "/v2_beta/Accounts/acme/IncomingPhoneNumbers/PN1.json", OpNumbersWrite},
	{"GET", "/v2_beta/Accounts/acme/AvailablePhoneNumbers/IN/Landline", OpNumbersRead},
	{"POST", "/v2_beta/Accounts/acme/AvailablePhoneNumbers/IN/Landline", OpNumbersBuy},
	{"GET", "/v2/accounts/acme/incoming-phone-numbers", OpNumbersRead},
	{"POST", "/v2/accounts/acme/incoming-phone-numbers", OpNumbersBuy},
	{"PATCH", "/v2/accounts/acme/incoming-phone-numbers/n1", OpNumbersWrite},
	// Whitelist.
	{"GET", "/v1/Accounts/acme/CustomerWhitelist.json", OpWhitelistRead},
	{"POST", "/v1/Accounts/acme/CustomerWhitelist", OpWhitelistWrite},
	{"DELETE", "/v1/Accounts/acme/customerwhitelist/09876543210", OpWhitelistWrite},
	// v2 and v3 calls.
	{"POST", "/v2/accounts/acme/calls", OpCallsConnect},
	{"POST", "/v2/accounts/acme/calls/", OpCallsConnect},
	{"GET", "/v2/accounts/acme/calls/abc123", OpCallsRead},
	{"PATCH", "/v2/accounts/acme/calls/abc123", OpCallsWrite},
	{"POST", "/v3/accounts/acme/calls", OpCallsConnect},
	{"POST", "/v3/accounts/acme/calls/c1/legs", OpCallsConnect},
	{"POST", "/v3/accounts/acme/calls/c1/LEGS/", OpCallsConnect},
	{"PATCH", "/v3/accounts/acme/calls/c1/legs/l1", OpCallsWrite},
	{"DELETE", "/v3/accounts/acme/calls/c1", OpCallsWrite},
	{"GET", "/v3/accounts/acme/calls/c1/legs", OpCallsRead},
	// Users, WhatsApp, campaigns, contacts, trunks.
	{"GET", "/v2/accounts/acme/users", OpUsersRead},
	{"POST", "/v2/accounts/acme/users", OpUsersWrite},
	{"PATCH", "/v2/accounts/acme/users/u1", OpUsersWrite},
	{"POST", "/v2/accounts/acme/messages", OpWhatsAppSend},
	{"GET", "/v2/accounts/acme/messages/m1", OpWhatsAppRead},
	{"DELETE", "/v2/accounts/acme/messages/m1", OpWhatsAppWrite},
	{"POST", "/v2/accounts/acme/campaigns", OpCampaignsWrite},
	{"GET", "/v2/accounts/acme/campaigns/c1", OpCampaignsRead},
	{"PUT", "/v2/accounts/acme/sms-campaigns/c1", OpCampaignsWrite},
	{"POST", "/v2/accounts/acme/message-campaigns", OpCampaignsWrite},
	{"GET", "/v2/accounts/acme/message-campaigns", OpCampaignsRead},
	{"GET", "/v2/accounts/acme/lists/l1/contacts", OpContactsRead},
	{"POST", "/v2/accounts/acme/lists", OpContactsWrite},
	{"DELETE", "/v2/accounts/acme/contacts/c1", OpContactsWrite},
	{"GET", "/v2/accounts/acme/trunks", OpTrunksRead},
	{"POST", "/v2/accounts/acme/trunks/t1/whitelisted-ips", OpTrunksWrite},
}

func TestClassifyOperation(t *testing.T) {
	covered := map[Operation]bool{}
	for _, tc := range operationCases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			got, err := Classify(tc.method, tc.path)
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if got.Operation != tc.want {
				t.Errorf("operation %q, want %q", got.Operation, tc.want)
			}
		})
		covered[tc.want] = true
	}
	for _, op := range Operations() {
		if !covered[op] {
			t.Errorf("no row yields %q", op)
		}
	}
}

// The README's table of operations names every operation, and no other.
func TestREADMEListsEveryOperation(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start := strings.Index(readme, "### Operations a client may be granted")
	if start < 0 {
		t.Fatal("README has no section \"Operations a client may be granted\"")
	}
	section := readme[start:]
	if end := strings.Index(section[4:], "\n#"); end >= 0 {
		section = section[:end+4]
	}
	for _, op := range Operations() {
		if !strings.Contains(section, "`"+op.String()+"`") {
			t.Errorf("the README's table does not name %s", op)
		}
	}
	for _, m := range regexp.MustCompile("`([a-z]+\\.[a-z]+)`").FindAllStringSubmatch(section, -1) {
		if _, ok := ParseOperation(m[1]); !ok && !strings.Contains(m[1], "json") {
			t.Errorf("the README's table names %s, which is no operation", m[1])
		}
	}
}

func TestParseOperation(t *testing.T) {
	seen := map[string]bool{}
	for _, op := range Operations() {
		name := op.String()
		if seen[name] || !strings.Contains(name, ".") || name != strings.ToLower(name) {
			t.Errorf("operation name %q: duplicate or not resource.action in lower case", name)
		}
		seen[name] = true
		if got, ok := ParseOperation(name); !ok || got != op {
			t.Errorf("ParseOperation(%q) = %v, %v", name, got, ok)
		}
	}
	for _, bad := range []string{"", "calls", "Calls.Connect", "calls.*", "operation(99)"} {
		if _, ok := ParseOperation(bad); ok {
			t.Errorf("ParseOperation(%q) accepted", bad)
		}
	}
	if OpNone.String() != "" || Operation(200).String() != "operation(200)" {
		t.Errorf("String of OpNone %q, of 200 %q", OpNone.String(), Operation(200).String())
	}
}

func TestShapeOf(t *testing.T) {
	for _, tc := range classifyCases() {
		t.Run(tc.name, func(t *testing.T) {
			if got := ShapeOf(tc.path); got != tc.want.Shape {
				t.Errorf("ShapeOf(%q) = %v, want %v", tc.path, got, tc.want.Shape)
			}
		})
	}
	for _, tc := range []struct {
		name string
		path string
		want Shape
	}{
		{"empty", "", ShapeJSON},
		{"v2 prefix only", "/v2/", ShapeV2},
		{"v3 anything", "/v3/whatever", ShapeV2},
		{"v2_beta xml-looking", "/v2_beta/Accounts/x/IncomingPhoneNumbers", ShapeJSON},
		{"v1 Json mixed case", "/v1/Accounts/x/Calls.Json", ShapeJSON},
		{"v1 only slashes", "/v1///", ShapeXML},
		{"v1 json segment", "/v1/.json", ShapeJSON},
		{"unknown json", "/v9/Accounts/x/Calls", ShapeJSON},
	} {
		t.Run("extra/"+tc.name, func(t *testing.T) {
			if got := ShapeOf(tc.path); got != tc.want {
				t.Errorf("ShapeOf(%q) = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
}

// benchPaths are the paths BenchmarkClassify and TestClassifyAllocs use.
var benchPaths = []struct {
	name   string
	method string
	path   string
	allocs float64
}{
	{"v1", "POST", "/v1/Accounts/exotel/Calls/connect.json", 0},
	{"v2", "POST", "/v2/accounts/exotel/calls", 0},
	{"mixed_case_double_slash", "GET", "/V1/ACCOUNTS/acme1m//SMS/Messages/A1b2C3.JSON", 0},
	{"v3_legs", "GET", "/v3/accounts/exotel/calls/c1/legs", 0},
	{"hostile", "GET", "/v1/Accounts/exotel/%2e%2e/Calls.json", 0},
	{"not_found", "GET", "/healthz", 0},
	// Lower-casing an upper-case SID is the one allocation Classify makes.
	{"upper_case_sid", "GET", "/v1/Accounts/ACME1M/Calls.json", 1},
}

func TestClassifyAllocs(t *testing.T) {
	for _, bp := range benchPaths {
		t.Run(bp.name, func(t *testing.T) {
			got := testing.AllocsPerRun(100, func() {
				_, _ = Classify(bp.method, bp.path)
			})
			if got != bp.allocs {
				t.Errorf("Classify(%q, %q) allocs = %v, want %v", bp.method, bp.path, got, bp.allocs)
			}
		})
	}
}

func BenchmarkClassify(b *testing.B) {
	for _, bp := range benchPaths {
		b.Run(bp.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Classify(bp.method, bp.path)
			}
		})
	}
}

func FuzzClassify(f *testing.F) {
	for _, tc := range classifyCases() {
		f.Add(tc.method, tc.path)
	}
	for _, tc := range operationCases {
		f.Add(tc.method, tc.path)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		r, err := Classify(method, path)
		if r.Shape != ShapeOf(path) {
			t.Errorf("Classify(%q, %q).Shape = %v, ShapeOf = %v", method, path, r.Shape, ShapeOf(path))
		}
		if err != nil {
			if !errors.Is(err, ErrBadPath) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrMethod) {
				t.Fatalf("Classify(%q, %q) error %v is no sentinel", method, path, err)
			}
			if r.Account != "" {
				t.Errorf("Classify(%q, %q) error %v with Account %q", method, path, err, r.Account)
			}
			return
		}
		if r.Account == "" || r.Account != strings.ToLower(r.Account) {
			t.Errorf("Classify(%q, %q).Account = %q, want non-empty lower case", method, path, r.Account)
		}
		if !hasSegmentFold(path, r.Account) {
			t.Errorf("Classify(%q, %q).Account = %q, not a segment of the path", method, path, r.Account)
		}
		if r.Family == FamilyUnknown || r.Bucket >= NumBuckets || r.Host > HostCCM || r.Shape > ShapeV2 {
			t.Errorf("Classify(%q, %q) = %+v, out of range", method, path, r)
		}
		if !methodAllowed(method) {
			t.Errorf("Classify(%q, %q) accepted the method", method, path)
		}
		// Every classified route has an operation, and a write is never
		// taken for a read: a read right never reaches a write.
		if r.Operation == OpNone || int(r.Operation) >= NumOperations || r.Operation.String() == "" {
			t.Fatalf("Classify(%q, %q) has operation %v", method, path, r.Operation)
		}
		isRead := strings.HasSuffix(r.Operation.String(), ".read")
		if isRead && method != "GET" && method != "HEAD" {
			t.Errorf("Classify(%q, %q) = %q: a write classified as a read", method, path, r.Operation)
		}
		if r2, err2 := Classify(method, strings.ToUpper(path)); err2 == nil && r2.Operation != r.Operation && !strings.Contains(path, "%") {
			t.Errorf("Classify(%q, %q) = %q but %q in upper case", method, path, r.Operation, r2.Operation)
		}
		if len(path) > MaxPathLen || !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") {
			t.Errorf("Classify(%q, %q) accepted a path of bad length or start", method, path)
		}
		if strings.Contains(path, "..") || strings.Contains(path, `\`) {
			t.Errorf("Classify(%q, %q) accepted a dot-dot or backslash", method, path)
		}
		lower := strings.ToLower(path)
		for _, esc := range []string{"%2e", "%2f", "%5c", "%00"} {
			if strings.Contains(lower, esc) {
				t.Errorf("Classify(%q, %q) accepted %s", method, path, esc)
			}
		}
		for i := 0; i < len(path); i++ {
			if c := path[i]; c < 0x20 || c >= 0x7f {
				t.Fatalf("Classify(%q, %q) accepted byte %#x", method, path, c)
			}
		}
	})
}

// hasSegmentFold reports whether seg is a '/'-separated segment of p,
// ignoring case.
func hasSegmentFold(p, seg string) bool {
	for s := range strings.SplitSeq(p, "/") {
		if strings.EqualFold(s, seg) {
			return true
		}
	}
	return false
}

// An action in the path wins over the method: placing a call, sending a
// message or buying a number is a POST, and any other method on such a path
// is refused, however the path is spelt.
func TestCreatingOperationsArePOSTOnly(t *testing.T) {
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v1/Accounts/acme/Calls/connect.json"},
		{"GET", "/v1/Accounts/acme/Calls/CONNECT.JSON"},
		{"GET", "/v1/Accounts/acme/Calls/conn%65ct.json"},
		{"GET", "/v1/Accounts/acme/Calls/connect.xml"},
		{"HEAD", "/v1/Accounts/acme/Calls/connect/x"},
		{"PUT", "/v1/Accounts/acme/Calls/connect"},
		{"GET", "/v1/Accounts/acme/Sms/send"},
		{"DELETE", "/v1/Accounts/acme/Sms/send.json"},
		{"GET", "/v1/Accounts/acme/Sms/bulks%65nd"},
		{"PUT", "/v2/accounts/acme/calls"},
		{"PATCH", "/v2/accounts/acme/messages"},
		{"PUT", "/v2/accounts/acme/incoming-phone-numbers"},
		{"PUT", "/v3/accounts/acme/calls/c1/legs"},
	} {
		if r, err := Classify(tc.method, tc.path); !errors.Is(err, ErrMethod) {
			t.Errorf("%s %s: %v %v, want ErrMethod", tc.method, tc.path, r.Operation, err)
		}
	}
}

// Bytes that are not path characters, or that an upstream may read as the
// end of the path or the start of its parameters, are refused: the
// operation is decided on the path Exotel sees.
func TestPathCharactersThatHideTheAction(t *testing.T) {
	for _, path := range []string{
		"/v1/Accounts/acme/Sms/send#",
		"/v1/Accounts/acme/Calls/connect#x",
		"/v2/accounts/acme/calls/#",
		"/v2/accounts/acme/messages/#",
		"/v2/accounts/acme/calls/;",
		"/v2/accounts/acme/calls/;jsessionid=1",
		"/v3/accounts/acme/calls/abc/legs/;",
		"/v2/accounts/acme/incoming-phone-numbers/;",
		"/v2_beta/Accounts/acme/IncomingPhoneNumbers/;",
		"/v1/Accounts/acme/Calls/connect;v=1",
		"/v1/Accounts/acme/Sms/send%23",
		"/v2/accounts/acme/calls/%3b",
		"/v1/Accounts/acme/Calls/a\"b", "/v1/Accounts/acme/Calls/a<b", "/v1/Accounts/acme/Calls/a>b",
		"/v1/Accounts/acme/Calls/a{b", "/v1/Accounts/acme/Calls/a}b", "/v1/Accounts/acme/Calls/a|b",
		"/v1/Accounts/acme/Calls/a^b", "/v1/Accounts/acme/Calls/a`b", "/v1/Accounts/acme/Calls/a[b]",
	} {
		if r, err := Classify("POST", path); !errors.Is(err, ErrBadPath) {
			t.Errorf("POST %s: %v %v, want ErrBadPath", path, r.Operation, err)
		}
	}
}
