package rotate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"
)

// fileDescriptor is what an *os.File gives to tell a terminal.
type fileDescriptor interface{ Fd() uintptr }

// ReadPair reads the new key and token from in: two lines (key, then
// token) or one "key:token" line. When in is a terminal, each is read
// without echo, after a prompt on prompt. Errors never quote what was read.
func ReadPair(in io.Reader, prompt io.Writer) (key, token string, err error) {
	if f, ok := in.(fileDescriptor); ok && term.IsTerminal(int(f.Fd())) {
		return readTerminal(int(f.Fd()), prompt)
	}
	r := bufio.NewReader(io.LimitReader(in, 8192))
	first, err := readLine(r)
	if err != nil {
		return "", "", err
	}
	if k, t, ok := strings.Cut(first, ":"); ok {
		key, token = k, t
	} else {
		key = first
		if token, err = readLine(r); err != nil {
			return "", "", err
		}
	}
	return check(key, token)
}

// readTerminal prompts for the key and the token and reads each without
// echo.
func readTerminal(fd int, prompt io.Writer) (string, string, error) {
	defer restoreOnSignal(fd)()
	var v [2]string
	for i, what := range []string{"API key", "API token"} {
		fmt.Fprintf(prompt, "new %s for the account (not echoed): ", what)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", "", fmt.Errorf("reading the %s from the terminal: %w", what, err)
		}
		v[i] = strings.TrimSpace(string(b))
	}
	return check(v[0], v[1])
}

// restoreOnSignal makes an interrupt or a termination while the terminal
// does not echo put the terminal back as it is now before the signal ends
// the process; without it, ^C at the prompt would leave the operator's
// shell without echo. The function it returns stops that.
func restoreOnSignal(fd int) (stop func()) {
	state, err := term.GetState(fd)
	if err != nil {
		return func() {}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			_ = term.Restore(fd, state)
			// Stopped, the signal takes its default action again.
			signal.Stop(sigs)
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				_ = p.Signal(s)
			}
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

// readLine reads one line without its end; EOF after text is a line.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("standard input ended before the key and token: give two lines (key, token) or one key:token line")
		}
		return "", fmt.Errorf("reading standard input: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// check refuses an empty or malformed pair without quoting it.
func check(key, token string) (string, string, error) {
	key, token = strings.TrimSpace(key), strings.TrimSpace(token)
	switch {
	case key == "" || token == "":
		return "", "", errors.New("the new API key and token must both be given: two lines (key, token) or one key:token line on standard input")
	case strings.ContainsAny(key, " \t:") || strings.ContainsAny(token, " \t"):
		return "", "", errors.New("the new API key must not contain a colon or a space, nor the token a space")
	}
	return key, token, nil
}
