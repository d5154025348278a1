package wire

import (
	"encoding/base64"
	"encoding/hex"
	"errors"

	"golang.org/x/crypto/curve25519"
)

// KeyLen is the length in bytes of a WireGuard (Curve25519) key.
const KeyLen = 32

// Key is a WireGuard public or private key. Its text form is standard
// base64, as wg(8) prints it.
type Key [KeyLen]byte

// ErrBadKey reports a key that is not 32 bytes of base64.
var ErrBadKey = errors.New("not a WireGuard key (expected 44 characters of base64)")

// ParseKey parses the base64 text form of a key.
func ParseKey(s string) (Key, error) {
	var k Key
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != KeyLen {
		return k, ErrBadKey
	}
	copy(k[:], b)
	return k, nil
}

// String returns the base64 text form.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Hex returns the lowercase hex form used by wireguard-go's UAPI.
func (k Key) Hex() string { return hex.EncodeToString(k[:]) }

// IsZero reports whether k is all zeros (unset).
func (k Key) IsZero() bool { return k == Key{} }

// MarshalText implements encoding.TextMarshaler.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Key) UnmarshalText(b []byte) error {
	p, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// PublicKey derives the public key of the private key k.
func (k Key) PublicKey() Key {
	var pub Key
	p, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		// X25519 fails only for a low-order result, which a clamped
		// scalar times the base point never produces.
		panic("wire: deriving public key: " + err.Error())
	}
	copy(pub[:], p)
	return pub
}
