package exotel

import (
	"strconv"
	"unicode/utf8"
)

// Content types AppendError returns.
const (
	contentTypeJSON = "application/json"
	contentTypeXML  = "application/xml"
)

// xmlHeader starts every ShapeXML body, as in Exotel's own responses.
const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// AppendError appends to dst the body of an error response in the given
// shape, and returns it with its Content-Type:
//
//   - ShapeJSON: {"RestException":{"Status":429,"Message":"..."}}, application/json
//   - ShapeXML: <?xml ...?> then <TwilioResponse><RestException><Status>429</Status>
//     <Message>...</Message></RestException></TwilioResponse>, application/xml
//   - ShapeV2: {"request_id":"...","method":"POST","http_code":429,"response":
//     {"code":429,"error_data":{"code":10724,"message":"...","description":"..."},
//     "status":"failure","data":null}}, application/json
//
// status is the HTTP status; message the human text (escaped as the shape
// needs; invalid UTF-8 becomes U+FFFD). method and requestID are used by
// ShapeV2 only, where the message is both error_data's message and its
// description and the code is V2Code(status). An unknown shape is treated
// as ShapeJSON.
func AppendError(dst []byte, shape Shape, status int, message, method, requestID string) (body []byte, contentType string) {
	switch shape {
	case ShapeXML:
		dst = append(dst, xmlHeader...)
		dst = append(dst, "<TwilioResponse><RestException><Status>"...)
		dst = strconv.AppendInt(dst, int64(status), 10)
		dst = append(dst, "</Status><Message>"...)
		dst = appendXMLText(dst, message)
		dst = append(dst, "</Message></RestException></TwilioResponse>"...)
		return dst, contentTypeXML
	case ShapeV2:
		dst = append(dst, `{"request_id":`...)
		dst = appendJSONString(dst, requestID)
		dst = append(dst, `,"method":`...)
		dst = appendJSONString(dst, method)
		dst = append(dst, `,"http_code":`...)
		dst = strconv.AppendInt(dst, int64(status), 10)
		dst = append(dst, `,"response":{"code":`...)
		dst = strconv.AppendInt(dst, int64(status), 10)
		dst = append(dst, `,"error_data":{"code":`...)
		dst = strconv.AppendInt(dst, int64(V2Code(status)), 10)
		dst = append(dst, `,"message":`...)
		dst = appendJSONString(dst, message)
		dst = append(dst, `,"description":`...)
		dst = appendJSONString(dst, message)
		dst = append(dst, `},"status":"failure","data":null}}`...)
		return dst, contentTypeJSON
	}
	dst = append(dst, `{"RestException":{"Status":`...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, `,"Message":`...)
	dst = appendJSONString(dst, message)
	dst = append(dst, `}}`...)
	return dst, contentTypeJSON
}

// V2Code returns the Exotel v2 error_data.code for an HTTP status:
// 400→1001, 401→1010, 403→1003, 404→1000, 415→1011, 429→10724.
// Exotel documents no code for any other status (405, 413, 502, 503, 504...),
// so V2Code returns the status itself: a number callers can still act on,
// and one that cannot collide with Exotel's four- and five-digit codes.
func V2Code(status int) int {
	switch status {
	case 400:
		return 1001
	case 401:
		return 1010
	case 403:
		return 1003
	case 404:
		return 1000
	case 415:
		return 1011
	case 429:
		return 10724
	}
	return status
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaped as encoding/json
// does with HTML escaping on: quotes, backslashes, control characters,
// '<', '>', '&', U+2028 and U+2029; invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but end lines in JavaScript.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendXMLText appends s escaped as XML character data, as xml.EscapeText
// does: markup characters and quotes become entities, tab, newline and
// carriage return become character references, and characters XML cannot
// hold (and invalid UTF-8) become U+FFFD.
func appendXMLText(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch {
		case r == '"':
			esc = "&#34;"
		case r == '\'':
			esc = "&#39;"
		case r == '&':
			esc = "&amp;"
		case r == '<':
			esc = "&lt;"
		case r == '>':
			esc = "&gt;"
		case r == '\t':
			esc = "&#x9;"
		case r == '\n':
			esc = "&#xA;"
		case r == '\r':
			esc = "&#xD;"
		case !xmlChar(r) || (r == utf8.RuneError && size == 1):
			esc = "\uFFFD"
		default:
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, esc...)
		i += size
		start = i
	}
	return append(dst, s[start:]...)
}

// xmlChar reports whether r is in XML 1.0's Char production.
func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}
