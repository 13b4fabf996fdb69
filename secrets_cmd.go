package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/exogate/exogate/internal/callers"
)

// minSecretLen is the shortest client secret hash-secret accepts: 32
// random characters of hex carry 128 bits, of base64 192.
const minSecretLen = 32

// hashSecretCommand is `exogate hash-secret`: it takes no arguments, so
// that -h prints the usage and reads nothing.
func hashSecretCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("exogate hash-secret", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: exogate hash-secret < FILE (the client secret, one line, at least 32 characters)")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("hash-secret: unexpected argument %q: the secret is read from stdin", fs.Arg(0))
	}
	return hashSecret(stdin, stdout)
}

// hashSecret reads a client secret (one line, from stdin so that it stays
// out of the shell history and the process list) and prints the hex
// SHA-256 that goes into clients[].secret_sha256.
func hashSecret(in io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("hash-secret: %w", err)
	}
	secret := strings.TrimRight(line, "\r\n")
	if len(secret) < minSecretLen {
		return fmt.Errorf("hash-secret: the secret is %d characters, at least %d are needed: generate one with `openssl rand -base64 32` or `head -c 32 /dev/urandom | base64`", len(secret), minSecretLen)
	}
	_, err = fmt.Fprintln(stdout, callers.HashSecret(secret))
	return err
}

// secretFromFile returns the trimmed content of file, or fallback when
// file is "". Errors never quote the content.
func secretFromFile(file, fallback string) (string, error) {
	if file == "" {
		return fallback, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
