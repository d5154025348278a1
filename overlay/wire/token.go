package wire

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// tokenPrefix starts every token string; the digit is the format version.
const tokenPrefix = "wrn1_"

// Token is what an admin hands to a node (or keeps for themselves): where the
// coordinator is, how to recognise its certificate, and a secret. Its string
// form is opaque to users.
type Token struct {
	// URL is the coordinator's base URL, https://host:port (or http://
	// for a coordinator run with --insecure-http behind a TLS proxy).
	URL string `json:"u"`
	// Pin is the lowercase hex SHA-256 of the coordinator's leaf
	// certificate (DER). Empty means: verify with the system roots.
	Pin string `json:"p,omitempty"`
	// Secret authenticates the bearer. The coordinator stores only its hash.
	Secret string `json:"s"`
}

// ErrBadToken reports a string that is not a Warren token.
var ErrBadToken = errors.New("not a Warren token (it should start with " + tokenPrefix + "; copy it again in one piece)")

// String encodes t in its opaque form.
func (t Token) String() string {
	b, err := json.Marshal(t)
	if err != nil {
		panic("wire: encoding token: " + err.Error()) // plain strings always marshal
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseToken decodes the opaque form and validates it.
func ParseToken(s string) (Token, error) {
	var t Token
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return t, ErrBadToken
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return t, ErrBadToken
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, ErrBadToken
	}
	if err := t.Validate(); err != nil {
		return t, err
	}
	return t, nil
}

// Validate checks that every field is well formed.
func (t Token) Validate() error {
	if err := ValidateCoordinatorURL(t.URL); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if t.Pin != "" && !isLowerHex(t.Pin, 64) {
		return fmt.Errorf("token: certificate pin is not a SHA-256 in hex")
	}
	if len(t.Secret) < 16 {
		return fmt.Errorf("token: secret is too short")
	}
	return nil
}

// ValidateCoordinatorURL checks a coordinator base URL: http or https, a
// host, no credentials, no path beyond "/", no query.
func ValidateCoordinatorURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("coordinator URL %q is not a URL", raw)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("coordinator URL %q must start with https://", raw)
	case u.Host == "":
		return fmt.Errorf("coordinator URL %q has no host", raw)
	case u.User != nil:
		return fmt.Errorf("coordinator URL %q must not contain credentials", raw)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return fmt.Errorf("coordinator URL %q must be only scheme://host:port", raw)
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// CertPin returns the pin of a certificate: the lowercase hex SHA-256 of
// its DER encoding.
func CertPin(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}
