package relay

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

// The example byte vectors in docs/PROTOCOL.md ("Examples"), built here
// from fixed keys and times. TestProtocolVectors checks that the encoders
// produce exactly the bytes the document shows and that the parsers read
// them back, so the two cannot drift apart.
var (
	vecRelayKey = func() []byte {
		k := make([]byte, KeyLen)
		for i := range k {
			k[i] = byte(i)
		}
		return k
	}()
	vecClaims = Claims{
		NodeID:    "n-1",
		PublicKey: testPub(0x11),
		Role:      wire.RoleClient,
		Expires:   time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	vecPeer     = testPub(0x22)
	vecTS       = uint64(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	vecObserved = netip.MustParseAddrPort("198.51.100.1:41641")
	vecToken    = token{0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33}
	vecTxID     = uint64(0x0102030405060708)
	vecCands    = []netip.AddrPort{vecObserved, netip.MustParseAddrPort("[2001:db8::1]:41641")}
	vecPayload  = []byte{4, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef}
)

// addrPortEq compares netip.AddrPorts, which cmp cannot look inside.
var addrPortEq = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })

// protocolVectors returns every example, by the name the document gives
// it, built with this package's encoders.
func protocolVectors(t *testing.T) map[string][]byte {
	t.Helper()
	cred := Issue(vecRelayKey, vecClaims)
	nc, err := parseNodeCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tag := credentialTag(vecRelayKey, nc.claims)
	return map[string][]byte{
		"credential":      []byte(cred),
		"credential-raw":  append(append([]byte(nil), nc.claims...), nc.tag[:]...),
		"hello":           appendHello(nil, nc, vecTS),
		"hello-ack":       appendAck(nil, &tag, vecTS, vecObserved),
		"data-to-relay":   must(Frame{Type: TypeData, Key: vecPeer, Payload: vecPayload}.Append(nil)),
		"data-from-relay": must(Frame{Type: TypeData, Key: vecClaims.PublicKey, Payload: vecPayload}.Append(nil)),
		"error":           appendError(nil, CodeUnknownPeer, vecPeer),
		"disco-call":      must(Disco{Type: DiscoCall, Token: vecToken, Candidates: vecCands}.Append(nil)),
		"disco-ping":      must(Disco{Type: DiscoPing, TxID: vecTxID, Token: vecToken}.Append(nil)),
		"disco-pong":      must(Disco{Type: DiscoPong, TxID: vecTxID, Observed: vecObserved}.Append(nil)),
	}
}

// docVectors reads the vectors in docs/PROTOCOL.md: a line
// "<!-- vector NAME -->" and then a fenced block, hex (bytes separated by
// spaces and newlines) or text (the credential, as a node holds it).
func docVectors(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.Open("../../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "<!-- vector ")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(name, " -->")
		if !sc.Scan() {
			t.Fatalf("vector %s: no block", name)
		}
		kind := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "```")
		var body strings.Builder
		for sc.Scan() && strings.TrimSpace(sc.Text()) != "```" {
			body.WriteString(sc.Text() + "\n")
		}
		switch kind {
		case "hex":
			b, err := hex.DecodeString(strings.Join(strings.Fields(body.String()), ""))
			if err != nil {
				t.Fatalf("vector %s: %v", name, err)
			}
			out[name] = b
		case "text":
			out[name] = []byte(strings.TrimSpace(body.String()))
		default:
			t.Fatalf("vector %s: block of kind %q, want hex or text", name, kind)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// hexBlock formats b as the document shows it: 16 bytes a line.
func hexBlock(b []byte) string {
	var s strings.Builder
	for i, c := range b {
		switch {
		case i > 0 && i%16 == 0:
			s.WriteByte('\n')
		case i > 0:
			s.WriteByte(' ')
		}
		fmt.Fprintf(&s, "%02x", c)
	}
	return s.String()
}

func TestProtocolVectors(t *testing.T) {
	want := protocolVectors(t)
	got := docVectors(t)
	for name, b := range want {
		if !bytes.Equal(got[name], b) {
			kind, text := "hex", hexBlock(b)
			if name == "credential" {
				kind, text = "text", string(b)
			}
			t.Errorf("docs/PROTOCOL.md vector %s does not match the encoder; it should read:\n<!-- vector %s -->\n```%s\n%s\n```", name, name, kind, text)
		}
	}
	for name := range got {
		if want[name] == nil {
			t.Errorf("docs/PROTOCOL.md has vector %s, which no test builds", name)
		}
	}
	if t.Failed() {
		return
	}

	// The parsers read the document's bytes back.
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := Verify(vecRelayKey, string(got["credential"]), now)
	if err != nil || !cmp.Equal(c, vecClaims) {
		t.Errorf("Verify(credential) = %+v, %v; want %+v", c, err, vecClaims)
	}
	if _, err := Verify(vecRelayKey, string(got["credential"]), vecClaims.Expires); err != ErrExpired {
		t.Errorf("Verify(credential) at its expiry: %v, want ErrExpired", err)
	}
	nc, err := parseNodeCredential(string(got["credential"]))
	if err != nil {
		t.Fatal(err)
	}
	frames := []struct {
		name string
		want Frame
	}{
		{"hello", Frame{Type: TypeHello, Timestamp: vecTS, Claims: nc.claims}},
		{"hello-ack", Frame{Type: TypeHelloAck, Timestamp: vecTS, Observed: vecObserved}},
		{"data-to-relay", Frame{Type: TypeData, Key: vecPeer, Payload: vecPayload}},
		{"data-from-relay", Frame{Type: TypeData, Key: vecClaims.PublicKey, Payload: vecPayload}},
		{"error", Frame{Type: TypeError, Code: CodeUnknownPeer, Key: vecPeer}},
	}
	for _, tt := range frames {
		b := got[tt.name]
		f, err := Parse(b)
		if err != nil {
			t.Errorf("Parse(%s): %v", tt.name, err)
			continue
		}
		tt.want.MAC = f.MAC // checked below
		if diff := cmp.Diff(tt.want, f, addrPortEq); diff != "" {
			t.Errorf("Parse(%s) (-want +got):\n%s", tt.name, diff)
		}
		switch tt.name {
		case "hello":
			c, _, err := openHello(vecRelayKey, b, f, now)
			if err != nil || !cmp.Equal(c, vecClaims) {
				t.Errorf("openHello(hello) = %+v, %v; want %+v", c, err, vecClaims)
			}
		case "hello-ack":
			if !checkAck(nc, b, f) {
				t.Error("checkAck(hello-ack) = false, want true")
			}
		}
	}
	discos := []struct {
		name string
		want Disco
	}{
		{"disco-call", Disco{Type: DiscoCall, Token: vecToken, Candidates: vecCands}},
		{"disco-ping", Disco{Type: DiscoPing, TxID: vecTxID, Token: vecToken}},
		{"disco-pong", Disco{Type: DiscoPong, TxID: vecTxID, Observed: vecObserved}},
	}
	for _, tt := range discos {
		d, err := ParseDisco(got[tt.name])
		if err != nil {
			t.Errorf("ParseDisco(%s): %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, d, addrPortEq); diff != "" {
			t.Errorf("ParseDisco(%s) (-want +got):\n%s", tt.name, diff)
		}
	}
}
