package relay

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func netipMust(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestFrameRoundTrip(t *testing.T) {
	var mac [MACLen]byte
	for i := range mac {
		mac[i] = byte(i)
	}
	tests := []struct {
		name    string
		f       Frame
		wantLen int
	}{
		{"hello", Frame{Type: TypeHello, Timestamp: 1 << 60, Claims: []byte("claims"), MAC: mac}, helloFixedLen + 6},
		{"ack v4", Frame{Type: TypeHelloAck, Timestamp: 7, Observed: netipMust("198.51.100.30:4500"), MAC: mac}, ackLen},
		{"ack v6", Frame{Type: TypeHelloAck, Timestamp: 7, Observed: netipMust("[2001:db8::1]:51820"), MAC: mac}, ackLen},
		{"ack no address", Frame{Type: TypeHelloAck, Timestamp: 7, MAC: mac}, ackLen},
		{"data", Frame{Type: TypeData, Key: testPub(5), Payload: []byte{4, 0, 0, 0, 1}}, DataHeaderLen + 5},
		{"data max", Frame{Type: TypeData, Key: testPub(5), Payload: bytes.Repeat([]byte{1}, MaxPayload)}, MaxFrameLen},
		{"error", Frame{Type: TypeError, Code: CodeNotAllowed, Key: testPub(6)}, errorLen},
		{"error unknown code", Frame{Type: TypeError, Code: 200}, errorLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.f.Append([]byte("prefix"))
			if err != nil {
				t.Fatal(err)
			}
			b = b[len("prefix"):]
			if len(b) != tt.wantLen {
				t.Errorf("encoded length: got %d, want %d", len(b), tt.wantLen)
			}
			got, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.f, got, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	data, _ := Frame{Type: TypeData, Key: testPub(1), Payload: []byte{1}}.Append(nil)
	hello, _ := Frame{Type: TypeHello, Claims: []byte("c")}.Append(nil)
	ack, _ := Frame{Type: TypeHelloAck}.Append(nil)
	errf, _ := Frame{Type: TypeError, Code: CodeStale}.Append(nil)
	claimsLen := func(n uint16) []byte {
		b := append([]byte(nil), hello...)
		b[HeaderLen+8], b[HeaderLen+9] = byte(n>>8), byte(n)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"header only", []byte{Magic, Version}, ErrMalformed},
		{"bad magic", append([]byte{'X'}, data[1:]...), ErrMalformed},
		{"wireguard initiation", []byte{1, 0, 0, 0, 5, 6, 7, 8}, ErrMalformed},
		{"other version", append([]byte{Magic, 2}, data[2:]...), ErrUnsupportedVersion},
		{"unknown type", []byte{Magic, Version, 9, 0}, ErrMalformed},
		{"type zero", []byte{Magic, Version, 0}, ErrMalformed},
		{"data without datagram", data[:DataHeaderLen], ErrMalformed},
		{"data short key", data[:10], ErrMalformed},
		{"data too long", append(append([]byte(nil), data...), make([]byte, MaxFrameLen)...), ErrMalformed},
		{"ack short", ack[:len(ack)-1], ErrMalformed},
		{"ack long", append(append([]byte(nil), ack...), 0), ErrMalformed},
		{"error short", errf[:len(errf)-1], ErrMalformed},
		{"error long", append(append([]byte(nil), errf...), 0), ErrMalformed},
		{"hello short", hello[:len(hello)-1], ErrMalformed},
		{"hello long", append(append([]byte(nil), hello...), 0), ErrMalformed},
		{"hello claims length zero", claimsLen(0), ErrMalformed},
		{"hello claims length past end", claimsLen(2), ErrMalformed},
		{"hello claims too long", claimsLen(maxClaimsLen + 1), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.b); !errors.Is(err, tt.want) {
				t.Errorf("Parse: got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAppendRejects(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
	}{
		{"unknown type", Frame{Type: 9}},
		{"data without payload", Frame{Type: TypeData}},
		{"data too big", Frame{Type: TypeData, Payload: make([]byte, MaxPayload+1)}},
		{"hello without claims", Frame{Type: TypeHello}},
		{"hello claims too long", Frame{Type: TypeHello, Claims: make([]byte, maxClaimsLen+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := tt.f.Append(nil); err == nil {
				t.Errorf("Append: got %x, want an error", b)
			}
		})
	}
}

func TestCodeAndTypeStrings(t *testing.T) {
	for c := Code(0); c < 10; c++ {
		if s := c.String(); s == "" || (c >= CodeNotRegistered && c <= CodeRateLimited && strings.HasPrefix(s, "code ")) {
			t.Errorf("Code(%d).String() = %q", c, s)
		}
	}
	if got := TypeData.String(); got != "data" {
		t.Errorf("TypeData.String() = %q", got)
	}
}

// FuzzParse checks that Parse never panics, and that whatever it accepts
// encodes back to the same bytes.
func FuzzParse(f *testing.F) {
	var mac [MACLen]byte
	seeds := []Frame{
		{Type: TypeHello, Timestamp: 99, Claims: marshalClaims(Claims{NodeID: "n", PublicKey: testPub(1), Role: "client"}), MAC: mac},
		{Type: TypeHelloAck, Timestamp: 99, Observed: netipMust("127.0.0.1:9")},
		{Type: TypeData, Key: testPub(2), Payload: []byte{4, 0, 0, 0, 9, 9}},
		{Type: TypeError, Code: CodeUnknownPeer, Key: testPub(3)},
	}
	for _, s := range seeds {
		b, err := s.Append(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{Magic, Version, byte(TypeHello), 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Parse(b)
		if k, ok := dataKey(b); ok != (err == nil && fr.Type == TypeData) || (ok && k != fr.Key) {
			t.Fatalf("dataKey = %v, %v; Parse = %v type %v key %v", k, ok, err, fr.Type, fr.Key)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("Parse: unexpected error kind %v", err)
			}
			return
		}
		out, err := fr.Append(nil)
		if err != nil {
			t.Fatalf("Append of a parsed frame: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip changed the frame:\n in  %x\n out %x", b, out)
		}
		if fr.Type == TypeHello {
			// Claims parsing is part of what a relay reads from the
			// network: it must not panic either.
			_, _ = parseClaims(fr.Claims)
		}
	})
}
