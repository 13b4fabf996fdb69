package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// Bad -ring and -route values are refused with the flag's name, rather
// than silently replaced (a -ring of 0 or below used to mean 2s) or
// reported as a config key the user never wrote.
func TestSandboxFlagsRefuseBadValues(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-ring", "0"}, "-ring"},
		{[]string{"-ring", "-1s"}, "-ring"},
		{[]string{"-ring", "10000h"}, "-ring"},
		{[]string{"-route", "calls"}, "-route"},
		{[]string{"-route", "=http://127.0.0.1:9000/"}, "-route"},
		{[]string{"-route", "calls="}, "-route"},
		{[]string{"-sms-route", "sms"}, "-sms-route"},
	} {
		if _, err := parseSandboxFlags(c.args, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error naming %s", c.args, err, c.want)
		}
	}
	f, err := parseSandboxFlags([]string{"-ring", "1h", "-seed", "-5", "-route", "calls=http://127.0.0.1:9000/x=y"}, io.Discard)
	if err != nil || f.ring != time.Hour || f.seed != -5 || len(f.routes) != 1 {
		t.Errorf("%+v %v", f, err)
	}
}
