package relay

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// A relay credential is the coordinator's statement "the holder of this
// string is node NodeID with WireGuard key PublicKey and role Role, until
// Expires", MACed with a key the coordinator shares with the relay. The
// relay verifies it without a database.
//
// Encoding (docs/PROTOCOL.md): the credential is claims || tag, in
// unpadded base64url. claims is canonical (one encoding per Claims value):
//
//	version    1 byte, 1
//	role       1 byte length, then the role's bytes
//	public key 32 bytes
//	expires    8 bytes, Unix seconds, big-endian signed
//	node ID    1 byte length, then the ID's bytes
//
// tag is HMAC-SHA256(key, "warren relay credential v1\x00" || claims).
//
// A node never sends its credential to the relay. It sends the claims and
// proves it holds the tag by MACing its HELLO with it; the relay, holding
// the key, recomputes the tag from the claims. Someone who captures a
// HELLO learns the claims (nothing secret) but not the tag, so cannot
// register the node from elsewhere; replaying the HELLO itself is
// refused because its timestamp is not newer than the registered one.

// Claims are what a relay credential asserts about its holder.
type Claims struct {
	// NodeID is the coordinator's ID of the node, at most MaxNodeIDLen
	// bytes. The relay uses it in logs.
	NodeID string
	// PublicKey is the node's WireGuard public key. The relay registers
	// the node under it and labels the node's datagrams with it.
	PublicKey wire.Key
	// Role must be wire.RoleClient or wire.RoleConnector.
	Role wire.Role
	// Expires is when the credential stops being accepted. It is kept to
	// the second; the zero time is long expired.
	Expires time.Time
}

// Credential errors.
var (
	// ErrBadCredential reports a credential that is malformed, was issued
	// with another key, or was altered.
	ErrBadCredential = errors.New("relay credential is not valid")
	// ErrExpired reports a genuine credential past its expiry.
	ErrExpired = errors.New("relay credential has expired")
)

const (
	// KeyLen is the length of a key made by NewKey, and the least Issue,
	// Verify and NewServer accept.
	KeyLen = 32
	// MaxNodeIDLen bounds Claims.NodeID.
	MaxNodeIDLen = 255

	claimsVersion = 1
	maxRoleLen    = 255
	tagLen        = sha256.Size
	// maxClaimsLen is the longest claims encoding.
	maxClaimsLen = 1 + 1 + maxRoleLen + wire.KeyLen + 8 + 1 + MaxNodeIDLen

	labelCredential = "warren relay credential v1\x00"
	labelHello      = "warren relay hello v1\x00"
	labelAck        = "warren relay ack v1\x00"
)

var credEncoding = base64.RawURLEncoding.Strict()

// NewKey returns a new random credential key. The coordinator issues with
// it and the relay verifies with it; it must stay secret.
func NewKey() ([]byte, error) {
	k := make([]byte, KeyLen)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generating relay key: %w", err)
	}
	return k, nil
}

func checkKey(key []byte) error {
	if len(key) < KeyLen {
		return fmt.Errorf("relay key is %d bytes, want at least %d", len(key), KeyLen)
	}
	return nil
}

// Issue returns the credential for c, MACed with key. It panics if key is
// shorter than KeyLen or c.NodeID or c.Role is longer than 255 bytes:
// those are the caller's bugs, not input to handle.
func Issue(key []byte, c Claims) string {
	if err := checkKey(key); err != nil {
		panic("relay: Issue: " + err.Error())
	}
	if len(c.NodeID) > MaxNodeIDLen || len(c.Role) > maxRoleLen {
		panic("relay: Issue: node ID or role longer than 255 bytes")
	}
	claims := marshalClaims(c)
	tag := credentialTag(key, claims)
	return credEncoding.EncodeToString(append(claims, tag[:]...))
}

// Verify checks the credential s against key and returns its claims. It
// returns ErrBadCredential (possibly wrapped) unless s is a credential
// issued with key for a client or connector, unaltered, and ErrExpired
// if it is genuine but not valid at now. The tag is compared in constant
// time.
func Verify(key []byte, s string, now time.Time) (Claims, error) {
	if err := checkKey(key); err != nil {
		return Claims{}, err
	}
	nc, err := parseNodeCredential(s)
	if err != nil {
		return Claims{}, err
	}
	want := credentialTag(key, nc.claims)
	if !hmac.Equal(want[:], nc.tag[:]) {
		return Claims{}, fmt.Errorf("%w: tag does not match", ErrBadCredential)
	}
	if !now.Before(nc.parsed.Expires) {
		return Claims{}, ErrExpired
	}
	return nc.parsed, nil
}

// nodeCredential is a credential as its node holds it: the claims to
// present in a HELLO and the tag to prove possession with. A node cannot
// check the tag (it lacks the key); the relay does.
type nodeCredential struct {
	claims []byte
	tag    [tagLen]byte
	parsed Claims
}

func parseNodeCredential(s string) (*nodeCredential, error) {
	b, err := credEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrBadCredential)
	}
	if len(b) <= tagLen {
		return nil, fmt.Errorf("%w: too short", ErrBadCredential)
	}
	nc := &nodeCredential{claims: b[:len(b)-tagLen]}
	copy(nc.tag[:], b[len(b)-tagLen:])
	if nc.parsed, err = parseClaims(nc.claims); err != nil {
		return nil, err
	}
	return nc, nil
}

func marshalClaims(c Claims) []byte {
	b := make([]byte, 0, 1+1+len(c.Role)+wire.KeyLen+8+1+len(c.NodeID))
	b = append(b, claimsVersion, byte(len(c.Role)))
	b = append(b, c.Role...)
	b = append(b, c.PublicKey[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Expires.Unix()))
	b = append(b, byte(len(c.NodeID)))
	return append(b, c.NodeID...)
}

// parseClaims decodes claims strictly: every byte accounted for, a role a
// node may hold, a non-zero key.
func parseClaims(b []byte) (Claims, error) {
	var c Claims
	bad := func(what string) (Claims, error) {
		return Claims{}, fmt.Errorf("%w: %s", ErrBadCredential, what)
	}
	if len(b) < 2 || b[0] != claimsVersion {
		return bad("unknown claims version")
	}
	n := int(b[1])
	b = b[2:]
	if len(b) < n+wire.KeyLen+8+1 {
		return bad("claims truncated")
	}
	c.Role = wire.Role(b[:n])
	b = b[n:]
	copy(c.PublicKey[:], b)
	b = b[wire.KeyLen:]
	c.Expires = time.Unix(int64(binary.BigEndian.Uint64(b)), 0).UTC()
	n = int(b[8])
	b = b[9:]
	if len(b) != n {
		return bad("claims length mismatch")
	}
	c.NodeID = string(b)
	if err := c.Role.Validate(); err != nil {
		return bad("role is not client or connector")
	}
	if c.PublicKey.IsZero() {
		return bad("public key is zero")
	}
	return c, nil
}

// mac returns HMAC-SHA256(key, label || msg). It is computed by hand
// rather than with crypto/hmac, which allocates two hashes per call: the
// relay verifies every HELLO it receives before it charges any budget,
// so verifying must cost little (TestMACIsHMAC checks it against
// crypto/hmac).
func mac(key []byte, label string, msg []byte) [sha256.Size]byte {
	var k [sha256.BlockSize]byte
	if len(key) > sha256.BlockSize {
		sum := sha256.Sum256(key)
		copy(k[:], sum[:])
	} else {
		copy(k[:], key)
	}
	// One buffer for both passes; on the stack for any frame a node
	// sends (a HELLO is at most 598 bytes).
	buf := make([]byte, 0, sha256.BlockSize+64+helloFixedLen+maxClaimsLen)
	for _, c := range k {
		buf = append(buf, c^0x36)
	}
	buf = append(buf, label...)
	buf = append(buf, msg...)
	inner := sha256.Sum256(buf)
	buf = buf[:0]
	for _, c := range k {
		buf = append(buf, c^0x5c)
	}
	buf = append(buf, inner[:]...)
	return sha256.Sum256(buf)
}

func credentialTag(key, claims []byte) [tagLen]byte {
	return mac(key, labelCredential, claims)
}

// appendHello appends a HELLO for nc at timestamp ts, MACed with nc's tag.
func appendHello(b []byte, nc *nodeCredential, ts uint64) []byte {
	start := len(b)
	b, err := Frame{Type: TypeHello, Timestamp: ts, Claims: nc.claims}.Append(b)
	if err != nil {
		panic("relay: encoding hello: " + err.Error()) // claims parsed, so they fit
	}
	m := mac(nc.tag[:], labelHello, b[start:len(b)-MACLen])
	copy(b[len(b)-MACLen:], m[:])
	return b
}

// openHello verifies the HELLO f, parsed from pkt, against key at now. It
// returns the claims and the node's tag (to MAC the answer with), or
// ErrBadCredential, or ErrExpired with the (genuine) claims. The MAC is checked before expiry, so a
// forged HELLO is never reported as expired.
func openHello(key, pkt []byte, f Frame, now time.Time) (Claims, [tagLen]byte, error) {
	c, err := parseClaims(f.Claims)
	if err != nil {
		return Claims{}, [tagLen]byte{}, err
	}
	tag := credentialTag(key, f.Claims)
	want := mac(tag[:], labelHello, pkt[:len(pkt)-MACLen])
	if !hmac.Equal(want[:], f.MAC[:]) {
		return Claims{}, [tagLen]byte{}, fmt.Errorf("%w: hello MAC does not match", ErrBadCredential)
	}
	if !now.Before(c.Expires) {
		return c, [tagLen]byte{}, ErrExpired
	}
	return c, tag, nil
}

// appendAck appends the HELLO-ACK answering timestamp ts from observed,
// MACed with the node's tag.
func appendAck(b []byte, tag *[tagLen]byte, ts uint64, observed netip.AddrPort) []byte {
	start := len(b)
	b, _ = Frame{Type: TypeHelloAck, Timestamp: ts, Observed: observed}.Append(b) // cannot fail
	m := mac(tag[:], labelAck, b[start:len(b)-MACLen])
	copy(b[len(b)-MACLen:], m[:])
	return b
}

// checkAck reports whether the HELLO-ACK f, parsed from pkt, is genuine
// for nc.
func checkAck(nc *nodeCredential, pkt []byte, f Frame) bool {
	want := mac(nc.tag[:], labelAck, pkt[:len(pkt)-MACLen])
	return hmac.Equal(want[:], f.MAC[:])
}
