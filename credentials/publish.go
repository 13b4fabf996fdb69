package credentials

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// ErrConflict means the account's source changed between the read a
// publication started from and its write: another rotation won, and
// nothing was written.
var ErrConflict = errors.New("credentials: the source changed since it was read")

// PublishConfig says where a Publisher writes one account's pair.
type PublishConfig struct {
	Spec Spec
	// Vault is the gateway's Vault configuration (address, CA, namespace,
	// timeout); its login method is not used: the writer is the operator.
	Vault VaultConfig
	// VaultToken is the operator's own Vault token, with the rotator
	// policy's rights (create and update on the secret, read on its
	// metadata), more than the gateway's read-only policy.
	VaultToken string
	// Getenv reads VAULT_ADDR, VAULT_CACERT and VAULT_NAMESPACE when the
	// Vault configuration leaves them empty (default: every variable
	// unset).
	Getenv func(string) string
}

// Publisher writes a new key and token to the source one account's
// credentials are read from, the way that source keeps versions: a new KV
// v2 version with check-and-set, a KV v1 write, or both files replaced by
// rename. Environment variables cannot be published to.
type Publisher struct {
	spec  Spec
	vault *api.Client
	sec   VaultSecret // defaults filled
}

// Snapshot is the account's pair as a Publisher read it: the base a
// publication writes over. It holds the secret's data only to carry its
// other fields into the next version, and never prints it.
type Snapshot struct {
	// Version labels the pair as the gateway does ("v7", "file-1a2b3c4d",
	// "kv1-…"); "" when there is none yet.
	Version string
	// KeyPrefix is the first 4 characters of the API key, enough for an
	// operator to find it in Exotel's dashboard; "" when there is none.
	KeyPrefix string

	cas    int            // KV v2: the secret's current version (0: none)
	data   map[string]any // the secret's fields (KV)
	keySum [32]byte       // SHA-256 of the API key (zero when there is none)
}

// HasKey reports whether the pair read holds the API key key: then
// publishing a new token leaves that key in use.
func (s Snapshot) HasKey(key string) bool {
	return s.KeyPrefix != "" && s.keySum == sha256.Sum256([]byte(key))
}

// String implements fmt.Stringer with metadata only.
func (s Snapshot) String() string { return "version " + s.Version + " (key " + s.KeyPrefix + "…)" }

// Format implements fmt.Formatter so that every verb, %#v and %+v
// included, prints the metadata only.
func (s Snapshot) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// NewPublisher makes the Publisher of cfg.Spec's source.
func NewPublisher(cfg PublishConfig) (*Publisher, error) {
	if cfg.Getenv == nil {
		cfg.Getenv = func(string) string { return "" }
	}
	p := &Publisher{spec: cfg.Spec}
	switch cfg.Spec.Source {
	case "file":
		if cfg.Spec.APIKeyFile == "" || cfg.Spec.APITokenFile == "" {
			return nil, fmt.Errorf("account %s: source file needs api_key_file and api_token_file", cfg.Spec.Account)
		}
		return p, nil
	case "vault":
	case "env":
		return nil, fmt.Errorf("account %s reads its credentials from environment variables (%s, %s): nothing can be published there; set the new values and restart, or move the account to Vault or files", cfg.Spec.Account, cfg.Spec.APIKeyEnv, cfg.Spec.APITokenEnv)
	default:
		return nil, fmt.Errorf("account %s: unsupported credentials source %q", cfg.Spec.Account, cfg.Spec.Source)
	}
	vc := cfg.Vault
	vc.Auth = VaultAuth{} // the gateway's login is not the writer's
	vcfg, err := vaultSettings(vc, cfg.Getenv)
	if err != nil {
		return nil, err
	}
	conf, _, err := apiConfig(vcfg, cfg.Getenv)
	if err != nil {
		return nil, err
	}
	client, err := api.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	client.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	client.SetNamespace(vcfg.Namespace)
	client.SetWrappingLookupFunc(func(string, string) string { return "" })
	if cfg.VaultToken == "" {
		return nil, errors.New("no Vault token to write with: set VAULT_TOKEN or -vault-token-file (the operator's token, with the rotator policy)")
	}
	client.SetToken(cfg.VaultToken)
	src, err := (&vaultClient{}).secretSource(cfg.Spec.Vault)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", cfg.Spec.Account, err)
	}
	p.vault, p.sec = client, src.s
	return p, nil
}

// Where names what the Publisher writes (paths, never a value).
func (p *Publisher) Where() string {
	switch {
	case p.vault == nil:
		return p.spec.APIKeyFile + ", " + p.spec.APITokenFile
	case p.sec.KVVersion == 2:
		return fmt.Sprintf("%s/data/%s", p.sec.Mount, p.sec.Path)
	}
	return fmt.Sprintf("%s/%s", p.sec.Mount, p.sec.Path)
}

// Read returns the pair the source holds now.
func (p *Publisher) Read(ctx context.Context) (Snapshot, error) {
	switch {
	case p.vault == nil:
		key, _, err := readSecretFile(p.spec.APIKeyFile)
		if err != nil {
			return Snapshot{}, err
		}
		token, _, err := readSecretFile(p.spec.APITokenFile)
		if err != nil {
			return Snapshot{}, err
		}
		return Snapshot{Version: "file-" + Fingerprint(key, token), KeyPrefix: prefix(key), keySum: sha256.Sum256([]byte(key))}, nil
	case p.sec.KVVersion == 1:
		sec, err := p.vault.KVv1(p.sec.Mount).Get(ctx, p.sec.Path)
		if errors.Is(err, api.ErrSecretNotFound) {
			return Snapshot{data: map[string]any{}}, nil
		}
		if err != nil {
			return Snapshot{}, p.vaultError("reading", err)
		}
		return p.snapshot(sec.Data, ""), nil
	}
	meta, err := p.vault.KVv2(p.sec.Mount).GetMetadata(ctx, p.sec.Path)
	if errors.Is(err, api.ErrSecretNotFound) {
		return Snapshot{data: map[string]any{}}, nil
	}
	if err != nil {
		return Snapshot{}, p.vaultError("reading the metadata of", err)
	}
	snap := Snapshot{cas: meta.CurrentVersion, data: map[string]any{}}
	if meta.CurrentVersion == 0 {
		return snap, nil
	}
	sec, err := p.vault.KVv2(p.sec.Mount).GetVersion(ctx, p.sec.Path, meta.CurrentVersion)
	if err != nil || sec.Data == nil {
		// The latest version is deleted: nothing to carry over, but
		// check-and-set still guards it.
		snap.Version = fmt.Sprintf("v%d", meta.CurrentVersion)
		return snap, nil
	}
	snap = p.snapshot(sec.Data, fmt.Sprintf("v%d", meta.CurrentVersion))
	snap.cas = meta.CurrentVersion
	return snap, nil
}

// snapshot describes a KV secret's data.
func (p *Publisher) snapshot(data map[string]any, version string) Snapshot {
	s := Snapshot{Version: version, data: data}
	key, kerr := field(data, p.sec.APIKeyField)
	token, terr := field(data, p.sec.APITokenField)
	if kerr == nil {
		s.KeyPrefix, s.keySum = prefix(key), sha256.Sum256([]byte(key))
	}
	if kerr == nil && terr == nil && version == "" {
		s.Version = "kv1-" + Fingerprint(key, token)
	}
	return s
}

// Publish writes key and token over base, the snapshot it was read as, and
// returns the new version's label. When the source changed since base was
// read it writes nothing and returns an error wrapping ErrConflict.
func (p *Publisher) Publish(ctx context.Context, base Snapshot, key, token string) (string, error) {
	if _, err := NewCredential(key, token, "", "", time.Time{}); err != nil {
		return "", err
	}
	if p.vault == nil {
		return p.publishFiles(ctx, base, key, token)
	}
	data := make(map[string]any, len(base.data)+2)
	for k, v := range base.data {
		data[k] = v
	}
	data[p.sec.APIKeyField], data[p.sec.APITokenField] = key, token
	if p.sec.KVVersion == 1 {
		// KV v1 has no check-and-set: read again just before writing.
		now, err := p.Read(ctx)
		if err != nil {
			return "", err
		}
		if now.Version != base.Version {
			return "", fmt.Errorf("%w: %s holds %s, not the %s this rotation read", ErrConflict, p.Where(), now.Version, base.Version)
		}
		if err := p.vault.KVv1(p.sec.Mount).Put(ctx, p.sec.Path, data); err != nil {
			return "", p.vaultError("writing", err)
		}
		return "kv1-" + Fingerprint(key, token), nil
	}
	sec, err := p.vault.KVv2(p.sec.Mount).Put(ctx, p.sec.Path, data, api.WithCheckAndSet(base.cas))
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
			return "", fmt.Errorf("%w: a new version of %s was written after this rotation read version %d", ErrConflict, p.Where(), base.cas)
		}
		return "", p.vaultError("writing", err)
	}
	return fmt.Sprintf("v%d", sec.VersionMetadata.Version), nil
}

// Previous returns the pair of the newest version older than base that is
// neither deleted nor destroyed, and its label: what a rollback publishes
// again. KV v2 only: files and KV v1 keep no previous versions.
func (p *Publisher) Previous(ctx context.Context, base Snapshot) (key, token, version string, err error) {
	if p.vault == nil || p.sec.KVVersion != 2 {
		return "", "", "", fmt.Errorf("%s keeps no previous versions (only Vault KV v2 does): publish the old key and token again with exogate rotate", p.Where())
	}
	meta, err := p.vault.KVv2(p.sec.Mount).GetMetadata(ctx, p.sec.Path)
	if err != nil {
		return "", "", "", p.vaultError("reading the metadata of", err)
	}
	var older []int
	now := time.Now()
	for v, m := range meta.Versions {
		// With delete_version_after, a version's deletion time is set
		// when it is written: it is deleted only once that time passed.
		deleted := !m.DeletionTime.IsZero() && !m.DeletionTime.After(now)
		n, err := strconv.Atoi(v)
		if err == nil && n < base.cas && !deleted && !m.Destroyed {
			older = append(older, n)
		}
	}
	if len(older) == 0 {
		return "", "", "", fmt.Errorf("%s has no version older than v%d that is neither deleted nor destroyed", p.Where(), base.cas)
	}
	sort.Ints(older)
	n := older[len(older)-1]
	sec, err := p.vault.KVv2(p.sec.Mount).GetVersion(ctx, p.sec.Path, n)
	if err != nil {
		return "", "", "", p.vaultError("reading", err)
	}
	if key, err = field(sec.Data, p.sec.APIKeyField); err != nil {
		return "", "", "", fmt.Errorf("version %d: %w", n, err)
	}
	if token, err = field(sec.Data, p.sec.APITokenField); err != nil {
		return "", "", "", fmt.Errorf("version %d: %w", n, err)
	}
	return key, token, fmt.Sprintf("v%d", n), nil
}

// vaultError describes a failed Vault call on the account's secret,
// without anything Vault sent but its status and error strings.
func (p *Publisher) vaultError(doing string, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		return fmt.Errorf("%s %s: permission denied (403): the token needs the rotator policy (create and update on the secret, read on its metadata)", doing, p.Where())
	}
	return fmt.Errorf("%s %s: %s", doing, p.Where(), describeVaultError(err))
}

// publishFiles replaces the key and token files after checking that the
// pair is still the one base read. Both new files are written in full
// (temporary files beside the old ones, same permissions) before either is
// renamed over its old one; if the second rename fails, the first file is
// put back, so the files never stay a mixed pair.
func (p *Publisher) publishFiles(ctx context.Context, base Snapshot, key, token string) (string, error) {
	now, err := p.Read(ctx)
	if err != nil {
		return "", err
	}
	if now.Version != base.Version {
		return "", fmt.Errorf("%w: %s hold %s, not the %s this rotation read", ErrConflict, p.Where(), now.Version, base.Version)
	}
	oldToken, _, err := readSecretFile(p.spec.APITokenFile)
	if err != nil {
		return "", err
	}
	tokenFile, err := prepareFile(p.spec.APITokenFile, token)
	if err != nil {
		return "", err
	}
	defer tokenFile.discard()
	keyFile, err := prepareFile(p.spec.APIKeyFile, key)
	if err != nil {
		return "", err
	}
	defer keyFile.discard()
	if err := tokenFile.commit(); err != nil {
		return "", err
	}
	if err := keyFile.commit(); err != nil {
		if back, perr := prepareFile(p.spec.APITokenFile, oldToken); perr == nil {
			if perr = back.commit(); perr != nil {
				back.discard()
			}
		}
		return "", err
	}
	return "file-" + Fingerprint(key, token), nil
}

// rename is os.Rename; tests make it fail.
var rename = os.Rename

// pendingFile is a complete new content for a file, written beside it and
// not yet renamed over it.
type pendingFile struct {
	path, target, tmp string
}

// prepareFile writes value and a newline to a temporary file beside the
// file path names (following symbolic links), with its permissions, owner
// and group. No
// temporary file outlives a failure.
func prepareFile(path, value string) (_ *pendingFile, err error) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	info, err := os.Stat(target)
	if err != nil {
		return nil, fileError(path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("%s: cannot write beside it: %s", path, errorKind(err))
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = keepOwner(tmp, info); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err = tmp.Chmod(info.Mode() & fs.ModePerm); err == nil {
		if _, err = tmp.WriteString(value + "\n"); err == nil {
			if err = tmp.Sync(); err == nil {
				err = tmp.Close()
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, errorKind(err))
	}
	return &pendingFile{path: path, target: target, tmp: tmp.Name()}, nil
}

// commit renames the new content over the file.
func (f *pendingFile) commit() error {
	if err := rename(f.tmp, f.target); err != nil {
		return fmt.Errorf("%s: %s", f.path, errorKind(err))
	}
	f.tmp = ""
	return nil
}

// discard removes the temporary file unless it was committed.
func (f *pendingFile) discard() {
	if f.tmp != "" {
		_ = os.Remove(f.tmp)
	}
}

// prefix is the first 4 characters of an API key: how an operator tells
// keys apart in Exotel's dashboard without the rest. A key shorter than 8
// characters has no prefix short enough to show.
func prefix(key string) string {
	if len(key) < 8 {
		return ""
	}
	return key[:4]
}
