// Package exotel holds what the gateway knows about Exotel's REST API: which
// request paths belong to which API family, which upstream host serves them,
// which rate-limit bucket they count against, and how Exotel shapes an error
// body so that the gateway's own errors parse like Exotel's.
//
// The package has no state: every function is safe for concurrent use.
package exotel

import "strconv"

// Host is the kind of upstream host a request goes to. Which concrete host
// that is depends on the account's region and is decided elsewhere.
// The zero value is HostAPI.
type Host uint8

// Upstream host kinds.
const (
	// HostAPI is the default host (api.exotel.com, api.in.exotel.com).
	HostAPI Host = iota
	// HostCCM is the host for Voice v2 calls, users and Voice v3
	// (ccm-api.exotel.com, ccm-api.in.exotel.com).
	HostCCM
)

// String returns "api" or "ccm".
func (h Host) String() string {
	switch h {
	case HostAPI:
		return "api"
	case HostCCM:
		return "ccm"
	}
	return "host(" + strconv.Itoa(int(h)) + ")"
}

// Family is the version family of an Exotel API path.
// The zero value is FamilyUnknown.
type Family uint8

// API families, by the first path segment.
const (
	// FamilyUnknown is a path outside Exotel's families.
	FamilyUnknown Family = iota
	// FamilyV1 is /v1/Accounts/{sid}/...
	FamilyV1
	// FamilyV2Beta is /v2_beta/Accounts/{sid}/...
	FamilyV2Beta
	// FamilyV2 is /v2/accounts/{sid}/...
	FamilyV2
	// FamilyV3 is /v3/accounts/{sid}/...
	FamilyV3
)

// String returns "unknown", "v1", "v2_beta", "v2" or "v3".
func (f Family) String() string {
	switch f {
	case FamilyUnknown:
		return "unknown"
	case FamilyV1:
		return "v1"
	case FamilyV2Beta:
		return "v2_beta"
	case FamilyV2:
		return "v2"
	case FamilyV3:
		return "v3"
	}
	return "family(" + strconv.Itoa(int(f)) + ")"
}

// Bucket is the per-account rate-limit bucket a request counts against.
// The zero value is BucketVoiceV1.
type Bucket uint8

// Rate-limit buckets, from Exotel's published per-account limits.
const (
	// BucketVoiceV1 covers v1 calls, numbers and the customer whitelist.
	BucketVoiceV1 Bucket = iota
	// BucketVoiceV2 covers v2 calls and users, and v3 calls.
	BucketVoiceV2
	// BucketSMS covers v1 SMS.
	BucketSMS
	// BucketWhatsApp covers v2 messages.
	BucketWhatsApp
	// BucketOther covers everything else (ExoPhones, campaigns, lists...).
	BucketOther
)

// NumBuckets is the number of buckets; valid buckets are 0 to NumBuckets-1.
const NumBuckets = 5

// String returns "voice_v1", "voice_v2", "sms", "whatsapp" or "other",
// the names ParseBucket accepts.
func (b Bucket) String() string {
	switch b {
	case BucketVoiceV1:
		return "voice_v1"
	case BucketVoiceV2:
		return "voice_v2"
	case BucketSMS:
		return "sms"
	case BucketWhatsApp:
		return "whatsapp"
	case BucketOther:
		return "other"
	}
	return "bucket(" + strconv.Itoa(int(b)) + ")"
}

// Buckets returns every bucket, in order. The slice is new on each call.
func Buckets() []Bucket {
	return []Bucket{BucketVoiceV1, BucketVoiceV2, BucketSMS, BucketWhatsApp, BucketOther}
}

// ParseBucket returns the bucket whose String is name. The match is exact
// (lower case), as names come from configuration files.
func ParseBucket(name string) (Bucket, bool) {
	for b := Bucket(0); b < NumBuckets; b++ {
		if b.String() == name {
			return b, true
		}
	}
	return 0, false
}

// Shape is the body shape a caller of a path expects, for errors and
// responses alike. The zero value is ShapeJSON.
type Shape uint8

// Body shapes.
const (
	// ShapeJSON is {"RestException":{"Status":...,"Message":...}}: v1 paths
	// ending in .json, and v2_beta.
	ShapeJSON Shape = iota
	// ShapeXML is <TwilioResponse><RestException>...: v1 paths without .json.
	ShapeXML
	// ShapeV2 is the v2/v3 envelope {"request_id":...,"response":{...}}.
	ShapeV2
)

// String returns "json", "xml" or "v2".
func (s Shape) String() string {
	switch s {
	case ShapeJSON:
		return "json"
	case ShapeXML:
		return "xml"
	case ShapeV2:
		return "v2"
	}
	return "shape(" + strconv.Itoa(int(s)) + ")"
}

// Route is what Classify learns from a request's method and path.
// The zero value is not a valid route.
type Route struct {
	// Account is the account SID from the path, lower-cased.
	Account string
	// Family is the path's API family.
	Family Family
	// Bucket is the rate-limit bucket the request counts against.
	Bucket Bucket
	// Host is the kind of upstream host that serves the path.
	Host Host
	// Shape is the body shape the caller expects.
	Shape Shape
	// Operation is what the request does, for a caller's rights.
	Operation Operation
}

// Operation is what a request does to which kind of resource, for a
// caller's rights: the path decides the resource, the method (or an action
// named in the path, such as Calls/connect) decides what is done to it.
// Names are "resource.action"; every resource has a read (GET, HEAD) and a
// write (anything else) operation, and some writes have their own name
// (placing a call, sending, buying a number). The zero value is OpNone,
// which no classified route has.
type Operation uint8

// Operations, in the order Operations lists them.
const (
	// OpNone is no operation: a path Classify refused.
	OpNone Operation = iota
	// OpCallsConnect places a call: v1 Calls/connect, a write to the v2 or
	// v3 calls collection, or to a v3 call's legs.
	OpCallsConnect
	// OpCallsRead reads call details and listings (v1, v2, v3).
	OpCallsRead
	// OpCallsWrite changes a call or a leg (any other write on calls).
	OpCallsWrite
	// OpSMSSend sends one SMS: v1 Sms/send.
	OpSMSSend
	// OpSMSBulkSend sends SMS in bulk: v1 Sms/bulksend.
	OpSMSBulkSend
	// OpSMSRead reads SMS details (v1 SMS/Messages).
	OpSMSRead
	// OpSMSWrite is any other write on v1 SMS.
	OpSMSWrite
	// OpWhatsAppSend sends a WhatsApp message: a write to v2 messages.
	OpWhatsAppSend
	// OpWhatsAppRead reads v2 messages.
	OpWhatsAppRead
	// OpWhatsAppWrite is any other write on v2 messages.
	OpWhatsAppWrite
	// OpNumbersRead reads number metadata (v1 Numbers) and ExoPhones
	// (IncomingPhoneNumbers, AvailablePhoneNumbers, incoming-phone-numbers).
	OpNumbersRead
	// OpNumbersBuy acquires an ExoPhone: a write to the IncomingPhoneNumbers
	// or incoming-phone-numbers collection, or any write to
	// AvailablePhoneNumbers.
	OpNumbersBuy
	// OpNumbersWrite changes or releases a number (any other write on
	// numbers).
	OpNumbersWrite
	// OpWhitelistRead reads the v1 CustomerWhitelist.
	OpWhitelistRead
	// OpWhitelistWrite changes the v1 CustomerWhitelist.
	OpWhitelistWrite
	// OpUsersRead reads v2 users.
	OpUsersRead
	// OpUsersWrite creates, changes or deletes v2 users.
	OpUsersWrite
	// OpCampaignsRead reads v2 campaigns, sms-campaigns, message-campaigns.
	OpCampaignsRead
	// OpCampaignsWrite creates, runs, changes or deletes them.
	OpCampaignsWrite
	// OpContactsRead reads v2 lists and contacts.
	OpContactsRead
	// OpContactsWrite changes v2 lists and contacts.
	OpContactsWrite
	// OpTrunksRead reads v2 trunks.
	OpTrunksRead
	// OpTrunksWrite changes v2 trunks (their numbers, destinations,
	// whitelisted IPs).
	OpTrunksWrite
)

// NumOperations is the number of operations; valid ones are 1 to
// NumOperations-1 (0 is OpNone).
const NumOperations = int(OpTrunksWrite) + 1

var operationNames = [NumOperations]string{
	OpNone:           "",
	OpCallsConnect:   "calls.connect",
	OpCallsRead:      "calls.read",
	OpCallsWrite:     "calls.write",
	OpSMSSend:        "sms.send",
	OpSMSBulkSend:    "sms.bulksend",
	OpSMSRead:        "sms.read",
	OpSMSWrite:       "sms.write",
	OpWhatsAppSend:   "whatsapp.send",
	OpWhatsAppRead:   "whatsapp.read",
	OpWhatsAppWrite:  "whatsapp.write",
	OpNumbersRead:    "numbers.read",
	OpNumbersBuy:     "numbers.buy",
	OpNumbersWrite:   "numbers.write",
	OpWhitelistRead:  "whitelist.read",
	OpWhitelistWrite: "whitelist.write",
	OpUsersRead:      "users.read",
	OpUsersWrite:     "users.write",
	OpCampaignsRead:  "campaigns.read",
	OpCampaignsWrite: "campaigns.write",
	OpContactsRead:   "contacts.read",
	OpContactsWrite:  "contacts.write",
	OpTrunksRead:     "trunks.read",
	OpTrunksWrite:    "trunks.write",
}

// String returns the operation's name, such as "calls.connect": the name
// ParseOperation accepts. OpNone's is "".
// Creates reports whether the operation places a call, sends a message or
// buys a number: only a POST may do that.
func (o Operation) Creates() bool {
	switch o {
	case OpCallsConnect, OpSMSSend, OpSMSBulkSend, OpWhatsAppSend, OpNumbersBuy:
		return true
	}
	return false
}

func (o Operation) String() string {
	if int(o) < NumOperations {
		return operationNames[o]
	}
	return "operation(" + strconv.Itoa(int(o)) + ")"
}

// Operations returns every operation but OpNone, in order. The slice is new
// on each call.
func Operations() []Operation {
	ops := make([]Operation, 0, NumOperations-1)
	for o := Operation(1); int(o) < NumOperations; o++ {
		ops = append(ops, o)
	}
	return ops
}

// ParseOperation returns the operation whose String is name. The match is
// exact (lower case), as names come from configuration files.
func ParseOperation(name string) (Operation, bool) {
	for o := Operation(1); int(o) < NumOperations; o++ {
		if operationNames[o] == name {
			return o, true
		}
	}
	return OpNone, false
}
