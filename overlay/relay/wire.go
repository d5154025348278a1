package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/warrennet/warren/overlay/wire"
)

// The frame layout; docs/PROTOCOL.md ("Relay") describes it in full. Every
// frame starts with a three-byte header: Magic, Version and a Type. All
// integers are big-endian.
const (
	// Magic is the first byte of every frame. It is not a WireGuard
	// message type (those are 1 to 4), so a Bind that also receives
	// direct WireGuard traffic can tell the two apart.
	Magic = 'W'
	// Version is the frame format version this package speaks.
	Version = 1

	// HeaderLen is the length of the common header.
	HeaderLen = 3
	// DataHeaderLen is what a DATA frame adds in front of a datagram:
	// the header and a public key.
	DataHeaderLen = HeaderLen + wire.KeyLen
	// MACLen is the length of the HMAC-SHA256 that ends HELLO and
	// HELLO-ACK frames.
	MACLen = 32
	// MaxFrameLen bounds every frame: the largest UDP payload.
	MaxFrameLen = 65535
	// MaxPayload is the largest datagram a DATA frame carries.
	MaxPayload = MaxFrameLen - DataHeaderLen

	helloFixedLen = HeaderLen + 8 + 2 + MACLen
	addrLen       = 16 + 2
	ackLen        = HeaderLen + 8 + addrLen + MACLen
	errorLen      = HeaderLen + 1 + wire.KeyLen
)

// Type is a frame type.
type Type uint8

// The frame types.
const (
	// TypeHello (node → relay) registers the sender's key at the
	// sender's address, and keeps the registration and the NAT mapping
	// alive. It carries the credential's claims and a timestamp, and
	// proves possession of the credential with a MAC; the credential's
	// secret itself never travels.
	TypeHello Type = 1
	// TypeHelloAck (relay → node) confirms a HELLO: it echoes the
	// timestamp, says which address the relay saw, and is MACed with the
	// node's credential secret so the node knows it is genuine.
	TypeHelloAck Type = 2
	// TypeData carries one WireGuard datagram. Node → relay, Key is the
	// destination's public key; relay → node, the source's.
	TypeData Type = 3
	// TypeError (relay → node) refuses something; Code says what.
	TypeError Type = 4
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeHelloAck:
		return "hello-ack"
	case TypeData:
		return "data"
	case TypeError:
		return "error"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Code says why the relay refused a frame. A node must treat a refusal as
// a hint: refusals are not authenticated.
type Code uint8

// The refusal codes. A node must accept codes it does not know.
const (
	// CodeNotRegistered: DATA came from an address with no live
	// registration. The node should send a HELLO.
	CodeNotRegistered Code = 1
	// CodeBadCredential: a HELLO's credential or MAC did not verify.
	CodeBadCredential Code = 2
	// CodeExpired: the credential has expired; the node needs a fresh
	// one from the coordinator.
	CodeExpired Code = 3
	// CodeStale: a HELLO's timestamp was not newer than the one
	// registered (a replay, or a clock that went backwards).
	CodeStale Code = 4
	// CodeNotAllowed: the policy does not let the sender reach Key.
	CodeNotAllowed Code = 5
	// CodeUnknownPeer: Key has no live registration at the relay.
	CodeUnknownPeer Code = 6
	// CodeRateLimited: the sender is over its rate or its queue at the
	// relay is full; datagrams are being dropped.
	CodeRateLimited Code = 7
)

func (c Code) String() string {
	switch c {
	case CodeNotRegistered:
		return "not registered"
	case CodeBadCredential:
		return "bad credential"
	case CodeExpired:
		return "credential expired"
	case CodeStale:
		return "stale hello"
	case CodeNotAllowed:
		return "destination not allowed"
	case CodeUnknownPeer:
		return "destination unknown"
	case CodeRateLimited:
		return "rate limited"
	}
	return fmt.Sprintf("code %d", uint8(c))
}

// Frame is one parsed frame. Which fields are set depends on Type; the
// others are zero. Slices alias the buffer the frame was parsed from.
type Frame struct {
	Type Type
	// Timestamp (HELLO, HELLO-ACK) is the node's HELLO timestamp: it
	// must grow with every HELLO, like WireGuard's TAI64N.
	Timestamp uint64
	// Claims (HELLO) is the claims part of the node's credential, byte
	// for byte as the coordinator issued it; at most maxClaimsLen bytes.
	Claims []byte
	// Observed (HELLO-ACK) is the node's address as the relay saw it;
	// the zero AddrPort if the relay did not say.
	Observed netip.AddrPort
	// MAC (HELLO, HELLO-ACK) authenticates everything before it.
	MAC [MACLen]byte
	// Key (DATA) is the destination (node → relay) or source (relay →
	// node) public key. Key (ERROR) is the peer the refusal concerns, or
	// zero.
	Key wire.Key
	// Payload (DATA) is the opaque WireGuard datagram, never empty.
	Payload []byte
	// Code (ERROR) says why.
	Code Code
}

// Errors from Parse.
var (
	// ErrMalformed reports bytes that are not a well-formed frame.
	ErrMalformed = errors.New("malformed relay frame")
	// ErrUnsupportedVersion reports a frame of another format version.
	ErrUnsupportedVersion = errors.New("unsupported relay frame version")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Parse parses one frame. Every type has an exact length or, for HELLO
// and DATA, an exact length given by its fields; anything else is
// ErrMalformed. Parse never allocates for the variable parts: Claims and
// Payload alias b.
func Parse(b []byte) (Frame, error) {
	var f Frame
	switch {
	case len(b) < HeaderLen:
		return f, malformed("%d bytes is shorter than a header", len(b))
	case len(b) > MaxFrameLen:
		return f, malformed("%d bytes is longer than %d", len(b), MaxFrameLen)
	case b[0] != Magic:
		return f, malformed("bad magic 0x%02x", b[0])
	case b[1] != Version:
		return f, fmt.Errorf("%w %d (this side speaks %d)", ErrUnsupportedVersion, b[1], Version)
	}
	f.Type = Type(b[2])
	body := b[HeaderLen:]
	switch f.Type {
	case TypeHello:
		if len(b) < helloFixedLen {
			return Frame{}, malformed("hello of %d bytes is shorter than %d", len(b), helloFixedLen)
		}
		f.Timestamp = binary.BigEndian.Uint64(body)
		n := int(binary.BigEndian.Uint16(body[8:]))
		if n == 0 || n > maxClaimsLen {
			return Frame{}, malformed("hello claims length %d is not within 1..%d", n, maxClaimsLen)
		}
		if want := helloFixedLen + n; len(b) != want {
			return Frame{}, malformed("hello of %d bytes, want %d", len(b), want)
		}
		f.Claims = body[10 : 10+n]
		copy(f.MAC[:], body[10+n:])
	case TypeHelloAck:
		if len(b) != ackLen {
			return Frame{}, malformed("hello-ack of %d bytes, want %d", len(b), ackLen)
		}
		f.Timestamp = binary.BigEndian.Uint64(body)
		f.Observed = parseAddr(body[8 : 8+addrLen])
		copy(f.MAC[:], body[8+addrLen:])
	case TypeData:
		if len(b) <= DataHeaderLen {
			return Frame{}, malformed("data of %d bytes carries no datagram", len(b))
		}
		copy(f.Key[:], body)
		f.Payload = body[wire.KeyLen:]
	case TypeError:
		if len(b) != errorLen {
			return Frame{}, malformed("error of %d bytes, want %d", len(b), errorLen)
		}
		f.Code = Code(body[0])
		copy(f.Key[:], body[1:])
	default:
		return Frame{}, malformed("unknown type %d", uint8(f.Type))
	}
	return f, nil
}

// dataKey returns the key of b if b is a DATA frame Parse accepts, and
// false otherwise: the relay's per-datagram check, without a Frame.
func dataKey(b []byte) (wire.Key, bool) {
	if len(b) <= DataHeaderLen || len(b) > MaxFrameLen || b[0] != Magic || b[1] != Version || Type(b[2]) != TypeData {
		return wire.Key{}, false
	}
	return wire.Key(b[HeaderLen:DataHeaderLen]), true
}

// Append appends the encoding of f to b. It reports an error for a frame
// Parse would reject: an unknown type, an empty or oversized payload,
// claims of the wrong size. For HELLO and HELLO-ACK it writes f.MAC as
// given; computing it is the caller's business.
func (f Frame) Append(b []byte) ([]byte, error) {
	b = append(b, Magic, Version, byte(f.Type))
	switch f.Type {
	case TypeHello:
		if len(f.Claims) == 0 || len(f.Claims) > maxClaimsLen {
			return nil, fmt.Errorf("hello claims of %d bytes is not within 1..%d", len(f.Claims), maxClaimsLen)
		}
		b = binary.BigEndian.AppendUint64(b, f.Timestamp)
		b = binary.BigEndian.AppendUint16(b, uint16(len(f.Claims)))
		b = append(b, f.Claims...)
		b = append(b, f.MAC[:]...)
	case TypeHelloAck:
		b = binary.BigEndian.AppendUint64(b, f.Timestamp)
		b = appendAddr(b, f.Observed)
		b = append(b, f.MAC[:]...)
	case TypeData:
		if len(f.Payload) == 0 || len(f.Payload) > MaxPayload {
			return nil, fmt.Errorf("data payload of %d bytes is not within 1..%d", len(f.Payload), MaxPayload)
		}
		b = append(b, f.Key[:]...)
		b = append(b, f.Payload...)
	case TypeError:
		b = append(b, byte(f.Code))
		b = append(b, f.Key[:]...)
	default:
		return nil, fmt.Errorf("unknown frame type %d", uint8(f.Type))
	}
	return b, nil
}

// putDataHeader writes a DATA header for key into h, which must hold
// DataHeaderLen bytes.
func putDataHeader(h []byte, key *wire.Key) {
	h[0], h[1], h[2] = Magic, Version, byte(TypeData)
	copy(h[HeaderLen:DataHeaderLen], key[:])
}

// appendError appends an ERROR frame.
func appendError(b []byte, code Code, key wire.Key) []byte {
	b = append(b, Magic, Version, byte(TypeError), byte(code))
	return append(b, key[:]...)
}

// appendAddr encodes an address as 16 bytes of IPv6 (IPv4 mapped) and a
// port; the zero AddrPort as 18 zero bytes.
func appendAddr(b []byte, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return append(b, make([]byte, addrLen)...)
	}
	a := ap.Addr().As16()
	b = append(b, a[:]...)
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

func parseAddr(b []byte) netip.AddrPort {
	var zero [addrLen]byte
	if [addrLen]byte(b) == zero {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[:16])).Unmap(), binary.BigEndian.Uint16(b[16:]))
}
