package sandbox

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// field is one callback field, in the order Exotel sends them.
type field struct{ name, value string }

// leg is one leg of a call in a callback's Legs.
type leg struct {
	OnCallDuration int    `json:"OnCallDuration"`
	Status         string `json:"Status"`
}

// sendCallCallback POSTs one of a call's status callbacks: event is
// "answered" or "terminal" (the only one sent when the call asked for no
// events).
func (s *Simulator) sendCallCallback(c *call, event string) {
	status, endTime, talk := c.res.Status, deref(c.res.EndTime), c.outcome.duration
	recording := deref(c.res.RecordingURL)
	if event == "answered" {
		status, endTime, talk = "in-progress", "", 0
	}
	fields := []field{{"CallSid", c.res.Sid}, {"Status", status}, {"RecordingUrl", recording}, {"DateUpdated", c.res.DateUpdated}}
	var legs []leg
	if len(c.events) > 0 {
		fields = append(fields,
			field{"EventType", event}, field{"DateCreated", c.res.DateCreated}, field{"To", c.res.To},
			field{"From", c.res.From}, field{"PhoneNumberSid", c.res.PhoneNumberSid},
			field{"StartTime", c.res.StartTime}, field{"EndTime", endTime},
			field{"ConversationDuration", strconv.Itoa(talk)}, field{"Direction", c.res.Direction},
			field{"CustomField", c.customField})
		legs = []leg{{talk, status}, {talk, status}}
	}
	var body []byte
	var contentType string
	if c.jsonBody {
		body, contentType = jsonCallback(fields, legs), "application/json"
	} else {
		body, contentType = multipartCallback(fields, legs)
	}
	s.post(c.callback, contentType, body, c.res.Sid)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// jsonCallback encodes a call callback as JSON; ConversationDuration is a
// number and Legs an array.
func jsonCallback(fields []field, legs []leg) []byte {
	m := map[string]any{}
	for _, f := range fields {
		m[f.name] = f.value
		if f.name == "ConversationDuration" {
			n, _ := strconv.Atoi(f.value)
			m[f.name] = n
		}
	}
	if legs != nil {
		m["Legs"] = legs
	}
	b, _ := json.Marshal(m)
	return b
}

// multipartCallback encodes a call callback as multipart/form-data, Legs
// as Legs[0][OnCallDuration], Legs[0][Status]...
func multipartCallback(fields []field, legs []leg) ([]byte, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, f := range fields {
		_ = mw.WriteField(f.name, f.value)
	}
	for i, l := range legs {
		prefix := "Legs[" + strconv.Itoa(i) + "]"
		_ = mw.WriteField(prefix+"[OnCallDuration]", strconv.Itoa(l.OnCallDuration))
		_ = mw.WriteField(prefix+"[Status]", l.Status)
	}
	_ = mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// sendSMSCallback POSTs an SMS's status callback, form-urlencoded.
func (s *Simulator) sendSMSCallback(m *sms) {
	v := url.Values{}
	v.Set("SmsSid", m.res.Sid)
	v.Set("To", m.res.To)
	v.Set("Status", m.res.Status)
	v.Set("SmsUnits", strconv.Itoa(m.res.SmsUnits))
	v.Set("DetailedStatus", m.res.DetailedStatus)
	v.Set("DetailedStatusCode", strconv.Itoa(m.res.DetailedStatusCode))
	v.Set("DateSent", deref(m.res.DateSent))
	v.Set("CustomField", m.customField)
	s.post(m.callback, "application/x-www-form-urlencoded", []byte(v.Encode()), m.res.Sid)
}

// callbackClient is the default callback client: a 10s timeout, roots as
// its certificate authorities when set, no proxy, and no
// connection to a link-local address such as a cloud metadata service,
// which no callback receiver on a laptop listens on, nor to an address
// RefuseCallbacksTo names.
func (s *Simulator) callbackClient(roots *x509.CertPool) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return nil
		}
		if a := ap.Addr().Unmap(); a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
			return errors.New("sandbox: status callbacks are not sent to link-local addresses")
		}
		s.mu.Lock()
		refused := s.refused
		s.mu.Unlock()
		for _, listen := range refused {
			if listensOn(listen, ap) {
				return errors.New("sandbox: status callbacks are not sent to the gateway's own listeners")
			}
		}
		return nil
	}}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = dialer.DialContext
	// Callbacks go to this machine's services: never through a proxy.
	transport.Proxy = nil
	if roots != nil {
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: transport}
}

// RefuseCallbacksTo makes the default callback client refuse the
// listeners at these host:port addresses (an empty or unspecified host is
// every address of this machine), such as the gateway's own API and admin
// listeners: a callback there could reach the admin endpoints, or place
// calls whose callbacks place calls without end.
func (s *Simulator) RefuseCallbacksTo(listeners ...string) {
	s.mu.Lock()
	s.refused = append([]string(nil), listeners...)
	s.mu.Unlock()
}

// listensOn reports whether a listener at listen (host:port) accepts
// connections to ap.
func listensOn(listen string, ap netip.AddrPort) bool {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port != strconv.Itoa(int(ap.Port())) {
		return false
	}
	addr := ap.Addr().Unmap()
	// A connection to 0.0.0.0 or :: reaches this machine's loopback.
	if addr == netip.IPv4Unspecified() {
		addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	} else if addr == netip.IPv6Unspecified() {
		addr = netip.IPv6Loopback()
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !ip.IsUnspecified() {
			return ip.Unmap() == addr
		}
		host = ""
	}
	var ips []net.IP
	if host == "" {
		if addr.IsLoopback() || addr.IsUnspecified() {
			return true
		}
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP)
			}
		}
	} else {
		ips, _ = net.LookupIP(host)
	}
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok && a.Unmap() == addr {
			return true
		}
	}
	return false
}

// callbackURLProblem says what is wrong with a StatusCallback: it must be
// an absolute http or https URL.
func callbackURLProblem(target string) string {
	if target == "" {
		return ""
	}
	u, err := url.Parse(target)
	if err != nil || (!strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https")) || u.Host == "" {
		return "StatusCallback must be an absolute http or https URL"
	}
	return ""
}

// post sends one callback, once, when one of the maxCallbacksInFlight
// slots is free. Failures are logged without the URL, which may hold a
// secret.
func (s *Simulator) post(target, contentType string, body []byte, sid string) {
	select {
	case s.slots <- struct{}{}:
	default:
		s.callbacksWaiting.Add(1)
		select {
		case s.slots <- struct{}{}:
			s.callbacksWaiting.Add(-1)
		case <-s.ctx.Done():
			s.callbacksWaiting.Add(-1)
			return
		}
	}
	defer func() { <-s.slots }()
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		s.log.Warn().Str("sid", sid).Msg("sandbox: status callback URL is not valid")
		return
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "exogate-sandbox")
	resp, err := s.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		s.log.Warn().Str("sid", sid).Str("error", err.Error()).Msg("sandbox: status callback failed")
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		s.log.Warn().Str("sid", sid).Int("status", resp.StatusCode).Msg("sandbox: status callback answered an error")
	}
}
