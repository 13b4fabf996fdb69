package sandbox

import (
	"strconv"
	"time"
)

// ist is the time zone Exotel writes its times in.
var ist = time.FixedZone("IST", 5*3600+1800)

// timeLayout is how Exotel writes times.
const timeLayout = "2006-01-02 15:04:05"

func stamp(t time.Time) string { return t.In(ist).Format(timeLayout) }

// callResource is the Call resource as Exotel answers it; nil fields are
// null in JSON and left out of XML.
type callResource struct {
	Sid            string  `json:"Sid" xml:"Sid"`
	ParentCallSid  *string `json:"ParentCallSid" xml:"ParentCallSid,omitempty"`
	DateCreated    string  `json:"DateCreated" xml:"DateCreated"`
	DateUpdated    string  `json:"DateUpdated" xml:"DateUpdated"`
	AccountSid     string  `json:"AccountSid" xml:"AccountSid"`
	To             string  `json:"To" xml:"To"`
	From           string  `json:"From" xml:"From"`
	PhoneNumberSid string  `json:"PhoneNumberSid" xml:"PhoneNumberSid"`
	Status         string  `json:"Status" xml:"Status"`
	StartTime      string  `json:"StartTime" xml:"StartTime"`
	EndTime        *string `json:"EndTime" xml:"EndTime,omitempty"`
	Duration       *int    `json:"Duration" xml:"Duration,omitempty"`
	Price          *string `json:"Price" xml:"Price,omitempty"`
	Direction      string  `json:"Direction" xml:"Direction"`
	AnsweredBy     *string `json:"AnsweredBy" xml:"AnsweredBy,omitempty"`
	ForwardedFrom  *string `json:"ForwardedFrom" xml:"ForwardedFrom,omitempty"`
	CallerName     *string `json:"CallerName" xml:"CallerName,omitempty"`
	URI            string  `json:"Uri" xml:"Uri"`
	RecordingURL   *string `json:"RecordingUrl" xml:"RecordingUrl,omitempty"`
}

// call is a placed call: its resource and what its callbacks need.
type call struct {
	res         callResource
	account     string
	created     time.Time
	outcome     outcome
	callback    string
	events      []string // "answered", "terminal"
	jsonBody    bool
	customField string
}

// smsResource is the SMSMessage resource as Exotel answers it.
type smsResource struct {
	Sid                string  `json:"Sid" xml:"Sid"`
	AccountSid         string  `json:"AccountSid" xml:"AccountSid"`
	From               string  `json:"From" xml:"From"`
	To                 string  `json:"To" xml:"To"`
	DateCreated        string  `json:"DateCreated" xml:"DateCreated"`
	DateUpdated        string  `json:"DateUpdated" xml:"DateUpdated"`
	DateSent           *string `json:"DateSent" xml:"DateSent,omitempty"`
	Body               string  `json:"Body" xml:"Body"`
	Direction          string  `json:"Direction" xml:"Direction"`
	URI                string  `json:"Uri" xml:"Uri"`
	Price              *string `json:"Price" xml:"Price,omitempty"`
	Status             string  `json:"Status" xml:"Status"`
	DetailedStatus     string  `json:"DetailedStatus" xml:"DetailedStatus"`
	DetailedStatusCode int     `json:"DetailedStatusCode" xml:"DetailedStatusCode"`
	SmsUnits           int     `json:"SmsUnits" xml:"SmsUnits"`
}

// sms is a sent SMS.
type sms struct {
	res         smsResource
	account     string
	callback    string
	customField string
}

// store holds the calls and SMS, the oldest forgotten past the caps.
type store struct {
	calls     map[string]*call
	callOrder []string // Sids, oldest first
	sms       map[string]*sms
	smsOrder  []string
}

func newStore() store {
	return store{calls: map[string]*call{}, sms: map[string]*sms{}}
}

func (st *store) addCall(c *call) {
	st.calls[c.res.Sid] = c
	st.callOrder = append(st.callOrder, c.res.Sid)
	if len(st.callOrder) > maxCalls {
		delete(st.calls, st.callOrder[0])
		st.callOrder = st.callOrder[1:]
	}
}

func (st *store) addSMS(m *sms) {
	st.sms[m.res.Sid] = m
	st.smsOrder = append(st.smsOrder, m.res.Sid)
	if len(st.smsOrder) > maxSMS {
		delete(st.sms, st.smsOrder[0])
		st.smsOrder = st.smsOrder[1:]
	}
}

// outcome is how a simulated call ends.
type outcome struct {
	status   string // completed, busy, no-answer, failed, canceled
	answered bool
	duration int // conversation seconds
}

// lastDigit returns the last decimal digit in number, or 0 if it has none.
func lastDigit(number string) int {
	for i := len(number) - 1; i >= 0; i-- {
		if c := number[i]; c >= '0' && c <= '9' {
			return int(c - '0')
		}
	}
	return 0
}

// callOutcome applies the package's outcome rule to a To number.
func callOutcome(to string) outcome {
	switch lastDigit(to) {
	case 5:
		return outcome{status: "busy"}
	case 6:
		return outcome{status: "no-answer"}
	case 7:
		return outcome{status: "failed"}
	case 8:
		return outcome{status: "canceled"}
	case 9:
		return outcome{status: "completed", answered: true, duration: 300}
	}
	return outcome{status: "completed", answered: true, duration: 30}
}

// smsOutcome applies the package's delivery rule to a To number.
func smsOutcome(to string) (status, detailed string, code int) {
	switch lastDigit(to) {
	case 5:
		return "failed-dnd", "FAILED_DND", 23005
	case 7:
		return "failed", "FAILED_SUBSCRIBER_UNAVAILABLE", 23035
	}
	return "sent", "DELIVERED_TO_HANDSET", 20005
}

// price is what an answered call of the given length costs: 0.50 per
// started minute.
func price(seconds int) string {
	minutes := (seconds + 59) / 60
	return strconv.FormatFloat(float64(minutes)*0.5, 'f', 3, 64)
}

// smsUnits is how many SMS a body takes: 160 characters each.
func smsUnits(body string) int {
	n := len([]rune(body))
	if n == 0 {
		return 1
	}
	return (n + 159) / 160
}
