package credentials

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// fileSource reads the key and the token from two files: a Kubernetes Secret
// volume, or files a Vault Agent template renders. Files are read whole each
// time, by path, so the atomic symlink swap Kubernetes does on update (the
// "..data" link) is seen like any other change. The version is "file-" and
// the pair's Fingerprint, so every replica reading the same pair reports
// the same version; the pair's creation time is the newer of the two files'
// modification times.
type fileSource struct {
	keyPath, tokenPath string
}

func (f *fileSource) load(context.Context) (pair, error) {
	key, keyMod, err := readSecretFile(f.keyPath)
	if err != nil {
		return pair{}, err
	}
	token, tokenMod, err := readSecretFile(f.tokenPath)
	if err != nil {
		return pair{}, err
	}
	return pair{key: key, token: token, version: "file-" + Fingerprint(key, token), created: later(keyMod, tokenMod)}, nil
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (f *fileSource) kind() string  { return "file" }
func (f *fileSource) where() string { return f.keyPath + ", " + f.tokenPath }

// readSecretFile returns the trimmed content of a small file and its
// modification time. Errors name the file and the problem, never its
// content.
func readSecretFile(path string) (string, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", time.Time{}, fileError(path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", time.Time{}, fileError(path, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4097))
	switch {
	case err != nil:
		return "", time.Time{}, fileError(path, err)
	case len(b) > 4096:
		return "", time.Time{}, fmt.Errorf("%s: larger than 4KiB, not a credential file", path)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", time.Time{}, fmt.Errorf("%s: file is empty", path)
	}
	return v, info.ModTime(), nil
}

// fileError describes a failure to read path without quoting its content.
func fileError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: file does not exist", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: permission denied", path)
	}
	return fmt.Errorf("%s: cannot read: %s", path, errorKind(err))
}

// errorKind describes err without any data it may quote.
func errorKind(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return "I/O error"
}
