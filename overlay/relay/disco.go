package relay

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Disco messages find and keep a direct path between two nodes
// (docs/PROTOCOL.md, "Direct path"). A CALL travels through the relay,
// inside a DATA frame, so the relay vouches for its sender, and tells the
// peer how to reach the sender directly: its candidate addresses and a
// token. PING and PONG travel directly between candidate addresses: a
// PING carries the receiver's token, which names the sender (tokens are
// per peer) and which only that peer has learnt, through the relay; a
// PONG echoes the PING's random transaction ID. WireGuard authenticates
// everything that then flows on the path; the token and the ID keep
// third parties from steering a node's traffic to a wrong address.
//
// Every message starts with DiscoMagic, which is neither a relay frame's
// Magic nor a WireGuard message type (1 to 4), so one socket tells the
// three apart by the first byte.
const (
	// DiscoMagic is the first byte of every disco message.
	DiscoMagic = 'D'
	// DiscoVersion is the disco format version this package speaks.
	DiscoVersion = 1

	discoHeaderLen = 3
	tokenLen       = 16
	discoFixedLen  = discoHeaderLen + 8 + tokenLen
	// maxCandidates bounds the addresses a CALL lists.
	maxCandidates = 8
	pongLen       = discoFixedLen + addrLen
)

// DiscoType is a disco message type.
type DiscoType uint8

// The disco message types.
const (
	// DiscoCall (through the relay): "reach me directly": the sender's
	// candidate addresses and the token its PINGs must carry.
	DiscoCall DiscoType = 1
	// DiscoPing (direct): a probe of one candidate address, carrying the
	// receiver's token.
	DiscoPing DiscoType = 2
	// DiscoPong (direct): the answer to a PING, to the address the PING
	// came from, echoing its transaction ID and saying that address.
	DiscoPong DiscoType = 3
)

func (t DiscoType) String() string {
	switch t {
	case DiscoCall:
		return "call"
	case DiscoPing:
		return "ping"
	case DiscoPong:
		return "pong"
	}
	return fmt.Sprintf("disco(%d)", uint8(t))
}

// token authenticates PINGs to a node: random, per peer and per open
// socket.
type token [tokenLen]byte

// Disco is one parsed disco message.
type Disco struct {
	Type DiscoType
	// TxID (PING, PONG) names a PING and its PONG.
	TxID uint64
	// Token (CALL) is the token PINGs to the sender must carry; (PING)
	// the receiver's token.
	Token token
	// Candidates (CALL) are the sender's addresses, at most
	// maxCandidates.
	Candidates []netip.AddrPort
	// Observed (PONG) is the address the PING came from.
	Observed netip.AddrPort
}

// ParseDisco parses one disco message. Every type has an exact length (a
// CALL's given by its count); anything else is ErrMalformed.
func ParseDisco(b []byte) (Disco, error) {
	var d Disco
	switch {
	case len(b) < discoFixedLen:
		return d, malformed("disco message of %d bytes is shorter than %d", len(b), discoFixedLen)
	case b[0] != DiscoMagic:
		return d, malformed("bad disco magic 0x%02x", b[0])
	case b[1] != DiscoVersion:
		return d, fmt.Errorf("%w: disco version %d (this side speaks %d)", ErrUnsupportedVersion, b[1], DiscoVersion)
	}
	d.Type = DiscoType(b[2])
	body := b[discoHeaderLen:]
	d.TxID = binary.BigEndian.Uint64(body)
	copy(d.Token[:], body[8:])
	rest := b[discoFixedLen:]
	switch d.Type {
	case DiscoCall:
		if len(rest) < 1 || int(rest[0]) > maxCandidates || len(rest) != 1+int(rest[0])*addrLen {
			return Disco{}, malformed("call of %d bytes does not match its candidate count", len(b))
		}
		for i := range int(rest[0]) {
			a := parseAddr(rest[1+i*addrLen : 1+(i+1)*addrLen])
			if !a.IsValid() || a.Port() == 0 {
				return Disco{}, malformed("call candidate %d is not an address and port", i)
			}
			d.Candidates = append(d.Candidates, a)
		}
	case DiscoPing:
		if len(rest) != 0 {
			return Disco{}, malformed("ping of %d bytes, want %d", len(b), discoFixedLen)
		}
	case DiscoPong:
		if len(b) != pongLen {
			return Disco{}, malformed("pong of %d bytes, want %d", len(b), pongLen)
		}
		d.Observed = parseAddr(rest)
	default:
		return Disco{}, malformed("unknown disco type %d", uint8(d.Type))
	}
	return d, nil
}

// Append appends the encoding of d to b. It reports an error for a
// message ParseDisco would reject.
func (d Disco) Append(b []byte) ([]byte, error) {
	b = append(b, DiscoMagic, DiscoVersion, byte(d.Type))
	b = binary.BigEndian.AppendUint64(b, d.TxID)
	b = append(b, d.Token[:]...)
	switch d.Type {
	case DiscoCall:
		if len(d.Candidates) > maxCandidates {
			return nil, fmt.Errorf("call of %d candidates, at most %d", len(d.Candidates), maxCandidates)
		}
		b = append(b, byte(len(d.Candidates)))
		for _, a := range d.Candidates {
			if !a.IsValid() || a.Port() == 0 {
				return nil, fmt.Errorf("call candidate %v is not an address and port", a)
			}
			b = appendAddr(b, a)
		}
	case DiscoPing:
	case DiscoPong:
		b = appendAddr(b, d.Observed)
	default:
		return nil, fmt.Errorf("unknown disco type %d", uint8(d.Type))
	}
	return b, nil
}
