package sshca

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/warrennet/warren/overlay/wire"
)

// Bounds of a key the CA certifies.
const (
	// MaxKeyLine bounds a public key line: a 16384-bit RSA key with a
	// long comment fits.
	MaxKeyLine = 8 << 10
	// MinRSABits and MaxRSABits bound an RSA key's modulus.
	MinRSABits = 2048
	MaxRSABits = 16384
)

// acceptedTypes are the key types the CA certifies: Ed25519, ECDSA and
// RSA, including their FIDO security-key forms.
var acceptedTypes = map[string]bool{
	ssh.KeyAlgoED25519:    true,
	ssh.KeyAlgoSKED25519:  true,
	ssh.KeyAlgoECDSA256:   true,
	ssh.KeyAlgoECDSA384:   true,
	ssh.KeyAlgoECDSA521:   true,
	ssh.KeyAlgoSKECDSA256: true,
	ssh.KeyAlgoRSA:        true,
}

// ParsePublicKey reads a user's public key in authorized_keys form
// ("ssh-ed25519 AAAA… comment", one line, no options) and checks the CA
// may certify it: Ed25519, ECDSA or RSA of at least 2048 bits. A
// certificate, a DSA key or anything else is refused with one line fit
// to show the user.
func ParsePublicKey(line string) (ssh.PublicKey, error) {
	line = strings.TrimSpace(line)
	switch {
	case line == "":
		return nil, errors.New("no SSH public key given")
	case len(line) > MaxKeyLine:
		return nil, fmt.Errorf("the SSH public key is %d bytes, more than %d: give one key (ID.pub)", len(line), MaxKeyLine)
	case strings.ContainsAny(line, "\r\n"):
		return nil, errors.New("give one SSH public key, on one line (ID.pub)")
	}
	// The type is checked on the text first, so a DSA key or a
	// certificate is named even where the parser has no words for it.
	typ, _, _ := strings.Cut(line, " ")
	switch {
	case strings.Contains(typ, "-cert-v01@openssh.com"):
		return nil, errors.New("that is a certificate, not a public key: give the key itself (ID.pub, not ID-cert.pub)")
	case typ == ssh.KeyAlgoDSA:
		return nil, errors.New("DSA keys are not accepted: use an Ed25519 key (ssh-keygen -t ed25519)")
	}
	pub, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, errors.New("not an SSH public key (want the line of ID.pub, such as \"ssh-ed25519 AAAA… user@host\")")
	}
	if len(options) > 0 || len(strings.TrimSpace(string(rest))) > 0 {
		return nil, errors.New("give the SSH public key alone (ID.pub), without authorized_keys options or more keys")
	}
	if err := CheckKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// CheckKey refuses a key the CA does not certify, with one line.
func CheckKey(pub ssh.PublicKey) error {
	if pub == nil {
		return errors.New("no SSH public key given")
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return errors.New("that is a certificate, not a public key: give the key itself (ID.pub, not ID-cert.pub)")
	}
	typ := pub.Type()
	switch {
	case typ == ssh.KeyAlgoDSA:
		return errors.New("DSA keys are not accepted: use an Ed25519 key (ssh-keygen -t ed25519)")
	case !acceptedTypes[typ]:
		return fmt.Errorf("%s keys are not accepted: use Ed25519, ECDSA or RSA (ssh-keygen -t ed25519)", typ)
	case typ == ssh.KeyAlgoRSA:
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return errors.New("unreadable RSA key")
		}
		rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return errors.New("unreadable RSA key")
		}
		if bits := rk.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
			return fmt.Errorf("RSA key of %d bits: want %d to %d bits, or better an Ed25519 key (ssh-keygen -t ed25519)", bits, MinRSABits, MaxRSABits)
		}
	}
	return nil
}

// Sign issues a user certificate on pub for keyID (the user's email),
// valid for principals from validAfter to validBefore, with serial and
// DefaultExtensions, signed by the key signing now. A signer that retires
// caps validBefore at its retirement, so no certificate outlives the
// trust in its signer: read the real validity from the certificate. It
// returns the certificate and the signer's fingerprint.
//
// principals may not be empty: a certificate without principals is valid
// for every user on servers that accept it.
func (c *CA) Sign(pub ssh.PublicKey, keyID string, principals []string, validAfter, validBefore time.Time, serial uint64) (*ssh.Certificate, string, error) {
	if err := CheckKey(pub); err != nil {
		return nil, "", err
	}
	if keyID == "" {
		return nil, "", errors.New("signing: no key ID")
	}
	if len(principals) == 0 {
		return nil, "", errors.New("signing: no principals (a certificate without any is valid for every user)")
	}
	for _, p := range principals {
		if err := wire.ValidatePrincipal(p); err != nil {
			return nil, "", fmt.Errorf("signing: %w", err)
		}
	}
	k := c.ring.Load().signer(c.now())
	if k.RetiresAt != nil && validBefore.After(*k.RetiresAt) {
		validBefore = *k.RetiresAt
	}
	if !validBefore.After(validAfter) || validAfter.Unix() < 0 {
		return nil, "", fmt.Errorf("signing: validity from %v to %v is empty", validAfter, validBefore)
	}
	ext := make(map[string]string, len(DefaultExtensions))
	for name, v := range DefaultExtensions {
		ext[name] = v
	}
	cert := &ssh.Certificate{
		Key:             pub,
		Serial:          serial,
		CertType:        ssh.UserCert,
		KeyId:           keyID,
		ValidPrincipals: append([]string(nil), principals...),
		ValidAfter:      uint64(validAfter.Unix()),
		ValidBefore:     uint64(validBefore.Unix()),
		Permissions:     ssh.Permissions{Extensions: ext},
	}
	if err := cert.SignCert(rand.Reader, k.signer); err != nil {
		return nil, "", fmt.Errorf("signing: %w", err)
	}
	return cert, k.Fingerprint, nil
}
