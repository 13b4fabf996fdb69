package credentials

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
)

// fileSource reads the key and the token from two files: a Kubernetes Secret
// volume, or files a Vault Agent template renders. Files are read whole each
// time, by path, so the atomic symlink swap Kubernetes does on update (the
// "..data" link) is seen like any other change. The version is a counter that
// goes up whenever the pair read differs from the last one.
type fileSource struct {
	keyPath, tokenPath string

	mu      sync.Mutex
	lastSum [sha256.Size]byte
	gen     int
}

func (f *fileSource) load(context.Context) (string, string, string, error) {
	key, err := readSecretFile(f.keyPath)
	if err != nil {
		return "", "", "", err
	}
	token, err := readSecretFile(f.tokenPath)
	if err != nil {
		return "", "", "", err
	}
	// The digest only tells one pair from the next; it never leaves here.
	sum := sha256.Sum256([]byte(key + "\x00" + token))
	f.mu.Lock()
	defer f.mu.Unlock()
	if sum != f.lastSum {
		f.lastSum, f.gen = sum, f.gen+1
	}
	return key, token, fmt.Sprintf("file-%d", f.gen), nil
}

func (f *fileSource) kind() string  { return "file" }
func (f *fileSource) where() string { return f.keyPath + ", " + f.tokenPath }

// readSecretFile returns the trimmed content of a small file. Errors name
// the file and the problem, never its content.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%s: file does not exist", path)
	case errors.Is(err, fs.ErrPermission):
		return "", fmt.Errorf("%s: permission denied", path)
	case err != nil:
		return "", fmt.Errorf("%s: cannot read: %s", path, errorKind(err))
	case len(b) > 4096:
		return "", fmt.Errorf("%s: larger than 4KiB, not a credential file", path)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s: file is empty", path)
	}
	return v, nil
}

// errorKind describes err without any data it may quote.
func errorKind(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return "I/O error"
}
