package rotate

import (
	"io"
	"strings"
	"testing"
)

// The pair is read as two lines or one key:token line; anything else is
// refused without quoting what was read.
func TestReadPair(t *testing.T) {
	for _, tc := range []struct {
		in, key, token string
		ok             bool
	}{
		{in: "KEY123\nTOKEN456\n", key: "KEY123", token: "TOKEN456", ok: true},
		{in: "KEY123\r\nTOKEN456", key: "KEY123", token: "TOKEN456", ok: true},
		{in: "KEY123:TOKEN456\n", key: "KEY123", token: "TOKEN456", ok: true},
		{in: "  KEY123:TOKEN456  \n", key: "KEY123", token: "TOKEN456", ok: true},
		{in: "KEY123:TOK:EN456\n", key: "KEY123", token: "TOK:EN456", ok: true},
		{in: ""},
		{in: "KEY123\n"},
		{in: "KEY123\n\n"},
		{in: ":TOKEN456\n"},
		{in: "KEY 123\nTOKEN456\n"},
		{in: "KEY123\nTOKEN 456\n"},
	} {
		key, token, err := ReadPair(strings.NewReader(tc.in), io.Discard)
		if tc.ok != (err == nil) || key != tc.key || token != tc.token {
			t.Errorf("%q: %q %q %v", tc.in, key, token, err)
		}
		if err != nil && (strings.Contains(err.Error(), "123") || strings.Contains(err.Error(), "456")) {
			t.Errorf("%q: the error quotes the input: %v", tc.in, err)
		}
	}
}
