package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/exogate/exogate/internal/callers"
)

// -h on each command prints its flags and exits 0, without an error line.
func TestHelpFlagExitsZero(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"serve", "-h"}, {"check", "-help"}, {"sandbox", "-h"},
		{"health", "-h"}, {"rotate", "-h"}, {"webhooks", "list", "-h"}, {"webhooks", "-h"}, {"hash-secret", "-h"}} {
		out, err := exec.Command(exogateBinary(t), args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage") || strings.Contains(string(out), "exogate: ") {
			t.Errorf("exogate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// A bad flag is reported once, by the flag package with the usage, and
// exits 2 as Go's commands do.
func TestBadFlagReportedOnce(t *testing.T) {
	cmd := exec.Command(exogateBinary(t), "sandbox", "-route", "nourl")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("exit: %v", err)
	}
	if n := strings.Count(string(out), "takes NAME=URL"); n != 1 {
		t.Errorf("the message appears %d times:\n%s", n, out)
	}
	if err := run(context.Background(), []string{"exogate", "sandbox", "-h"}, func(string) string { return "" }, nil, &strings.Builder{}, &strings.Builder{}); err != nil {
		t.Errorf("run sandbox -h: %v", err)
	}
}

// A listener that cannot bind says which setting names it.
func TestBusyPortNamesTheSetting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct{ flag, want string }{{"-listen", "-listen"}, {"-admin", "-admin"}} {
		args := []string{"exogate", "sandbox", "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0"}
		args = append(args, tc.flag, ln.Addr().String())
		err := run(context.Background(), args, func(string) string { return "" }, nil, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("%s on a busy port: %v", tc.flag, err)
		}
	}
}

// hash-secret -h prints the usage without reading a secret from stdin.
func TestHashSecretHelpReadsNothing(t *testing.T) {
	cmd := exec.Command(exogateBinary(t), "hash-secret", "-h")
	cmd.Stdin = strings.NewReader(strings.Repeat("s", 40) + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Usage") || strings.Contains(string(out), callers.HashSecret(strings.Repeat("s", 40))) {
		t.Errorf("exogate hash-secret -h: %v\n%s", err, out)
	}
}

// exogate health is a HEALTHCHECK: a bad flag exits 1, never Docker's
// reserved 2.
func TestHealthBadFlagExitsOne(t *testing.T) {
	err := exec.Command(exogateBinary(t), "health", "-nope").Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("exit: %v", err)
	}
}
