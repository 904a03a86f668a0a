package bidder

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/openbidder/openbidder/budget"
)

// secret resolves a secret-bearing config value:
//
//	env:NAME   the environment variable NAME (it must be set and not empty)
//	file:PATH  the file's content, one trailing newline removed (a mounted secret)
//	anything else is the value itself
//
// field names the setting in errors. The value never appears in an error.
func secret(field, spec string) (string, error) {
	switch {
	case strings.HasPrefix(spec, "env:"):
		name := strings.TrimPrefix(spec, "env:")
		v := os.Getenv(name)
		if v == "" {
			return "", fmt.Errorf("%w: %s: environment variable %s is not set or empty", ErrConfig, field, name)
		}
		return v, nil
	case strings.HasPrefix(spec, "file:"):
		path := strings.TrimPrefix(spec, "file:")
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrConfig, field, err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return "", fmt.Errorf("%w: %s: %s is empty", ErrConfig, field, path)
		}
		return v, nil
	}
	return spec, nil
}

// secretSource names where a secret-bearing value came from, for an error
// about the value itself ("" when it was written in the config): a key that
// is too short in a mounted file is otherwise reported against a field whose
// written value looks fine.
func secretSource(spec string) string {
	switch {
	case strings.HasPrefix(spec, "env:"):
		return " (from environment variable " + strings.TrimPrefix(spec, "env:") + ")"
	case strings.HasPrefix(spec, "file:"):
		return " (from file " + strings.TrimPrefix(spec, "file:") + ")"
	}
	return ""
}

// minKeyLen is the shortest notice key accepted: a shorter HMAC key can be
// guessed, and with it any notice forged.
const minKeyLen = 16

// keyFileLen is the generated key: 32 random bytes, hex-encoded. The 64
// characters themselves are the HMAC key, so the same file given to another
// instance as notices.key: file:PATH yields the same key.
const keyFileLen = 64

// Key file errors.
var (
	ErrKeyFileMode = errors.New("bidder: notice key file is readable by others")
	ErrKeyFileBad  = errors.New("bidder: notice key file is malformed")
)

// noticeKeys resolves the notice keys: the first signs, every one verifies.
// Configured keys (notices.key or notices.keys) win; with none, the key in
// notices.key_file is read, or generated there at first start when create
// is set (a -check-config run only checks it). generated reports a new file.
func noticeKeys(n *NoticeConfig, create bool) (keys [][]byte, generated bool, err error) {
	specs := n.Keys
	if n.Key != "" {
		specs = []string{n.Key}
	}
	if len(specs) == 0 {
		k, gen, err := keyFile(n.KeyFile, create)
		if err != nil || k == nil {
			return nil, false, err
		}
		return [][]byte{k}, gen, nil
	}
	var errs []error
	for i, spec := range specs {
		field := "notices.key"
		if n.Key == "" {
			field = fmt.Sprintf("notices.keys[%d]", i)
		}
		v, err := secret(field, spec)
		switch {
		case err != nil:
			errs = append(errs, err)
		case len(v) < minKeyLen:
			errs = append(errs, fmt.Errorf("%w: %s: a notice key needs at least %d bytes, it has %d%s", ErrConfig, field, minKeyLen, len(v), secretSource(spec)))
		default:
			keys = append(keys, []byte(v))
		}
	}
	if len(errs) > 0 {
		return nil, false, errors.Join(errs...)
	}
	return keys, false, nil
}

// keyFile reads the generated notice key at path, or creates it when create
// is set and the file does not exist. Without create a missing file is not an
// error (nil key). The file must be 0600 (or stricter) and hold 64 hex
// characters and an optional newline.
func keyFile(path string, create bool) ([]byte, bool, error) {
	k, err := readKeyFile(path)
	switch {
	case err == nil:
		return k, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, err
	case !create:
		return nil, false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("%w: notices.key_file: %v", ErrConfig, err)
	}
	var raw [keyFileLen / 2]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, false, err
	}
	// Write a temporary file, then link it into place: the key appears whole
	// or not at all, and of two instances starting at once on one directory
	// the first link wins and both use its key.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".notice.key.*") // mode 0600
	if err != nil {
		return nil, false, fmt.Errorf("%w: notices.key_file: %v", ErrConfig, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(raw[:]) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, false, fmt.Errorf("%w: notices.key_file: %v", ErrConfig, err)
	}
	k, err = readKeyFile(path)
	return k, err == nil, err
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if m := st.Mode(); !m.IsRegular() || m.Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v: it must be a regular file readable by its owner only (chmod 600 %s)", ErrKeyFileMode, path, m, path)
	}
	b := make([]byte, keyFileLen+2)
	n, _ := f.Read(b)
	k := []byte(strings.TrimSuffix(strings.TrimSuffix(string(b[:n]), "\n"), "\r"))
	if _, err := hex.DecodeString(string(k)); err != nil || len(k) != keyFileLen {
		return nil, fmt.Errorf("%w: %s must hold %d hex characters (a generated key); remove it to generate a new one, which voids notices for earlier bids", ErrKeyFileBad, path, keyFileLen)
	}
	return k, nil
}

// secrets are the config's secret values, resolved from their sources.
type secrets struct {
	noticeKeys   [][]byte
	keyGenerated bool // the notice key file was created by this call
	adminToken   string
	adminTokens  []namedToken // admin_token (named "admin") and admin_tokens
	natsAuth     budget.Auth  // budget.auth
	routeUser    string       // budget.embedded_cluster.auth
	routePass    string
}

// resolveSecrets resolves every secret source of cfg and reports every
// problem at once. create lets it generate the notice key file (Start);
// -check-config only checks an existing one.
func resolveSecrets(cfg *Config, create bool) (*secrets, error) {
	var errs []error
	var s secrets
	var err error
	if s.noticeKeys, s.keyGenerated, err = noticeKeys(&cfg.Notices, create); err != nil {
		errs = append(errs, err)
	}
	get := func(field, spec string) string {
		if spec == "" {
			return ""
		}
		v, err := secret(field, spec)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	s.adminToken = get("admin_token", cfg.AdminToken)
	if s.adminToken != "" && len(s.adminToken) < minKeyLen {
		errs = append(errs, fmt.Errorf("%w: admin_token: needs at least %d bytes%s", ErrConfig, minKeyLen, secretSource(cfg.AdminToken)))
	}
	if s.adminToken != "" {
		s.adminTokens = append(s.adminTokens, namedToken{name: adminTokenName, token: s.adminToken})
	}
	for i, t := range cfg.AdminTokens {
		field := fmt.Sprintf("admin_tokens[%d].token", i)
		v := get(field, t.Token)
		switch {
		case v == "":
		case len(v) < minKeyLen:
			errs = append(errs, fmt.Errorf("%w: %s: needs at least %d bytes%s", ErrConfig, field, minKeyLen, secretSource(t.Token)))
		case slices.ContainsFunc(s.adminTokens, func(n namedToken) bool { return n.token == v }):
			errs = append(errs, fmt.Errorf("%w: %s: the same token as another admin token (each names who uses it)", ErrConfig, field))
		default:
			s.adminTokens = append(s.adminTokens, namedToken{name: t.Name, token: v})
		}
	}
	a := cfg.Budget.Auth
	s.natsAuth = budget.Auth{
		User:      get("budget.auth.user", a.User),
		Password:  get("budget.auth.password", a.Password),
		NKeySeed:  get("budget.auth.nkey_seed", a.NKeySeed),
		CredsFile: a.Credentials,
	}
	if a.Credentials != "" {
		if _, err := os.Stat(a.Credentials); err != nil {
			errs = append(errs, fmt.Errorf("%w: budget.auth.credentials: %v", ErrConfig, err))
		}
	}
	ra := cfg.Budget.EmbeddedCluster.Auth
	s.routeUser = get("budget.embedded_cluster.auth.user", ra.User)
	s.routePass = get("budget.embedded_cluster.auth.password", ra.Password)
	return &s, errors.Join(errs...)
}
