package relay

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func mustKey(t *testing.T) []byte {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testPub(b byte) wire.Key {
	var k wire.Key
	for i := range k {
		k[i] = b
	}
	return k
}

// flip changes the character of s at i to another base64url character.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestCredential(t *testing.T) {
	key, otherKey := mustKey(t), mustKey(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	claims := Claims{NodeID: "0123456789abcdef", PublicKey: testPub(0xaa), Role: wire.RoleClient, Expires: now.Add(time.Hour)}
	good := Issue(key, claims)

	tests := []struct {
		name    string
		key     []byte
		cred    string
		now     time.Time
		want    Claims
		wantErr error
	}{
		{name: "valid", key: key, cred: good, now: now, want: claims},
		{name: "valid connector", key: key, cred: Issue(key, Claims{NodeID: "c", PublicKey: testPub(1), Role: wire.RoleConnector, Expires: now.Add(time.Minute)}), now: now,
			want: Claims{NodeID: "c", PublicKey: testPub(1), Role: wire.RoleConnector, Expires: now.Add(time.Minute)}},
		{name: "one second before expiry", key: key, cred: good, now: now.Add(time.Hour - time.Second), want: claims},
		{name: "at expiry", key: key, cred: good, now: now.Add(time.Hour), wantErr: ErrExpired},
		{name: "after expiry", key: key, cred: good, now: now.Add(48 * time.Hour), wantErr: ErrExpired},
		{name: "zero expiry", key: key, cred: Issue(key, Claims{NodeID: "n", PublicKey: testPub(1), Role: wire.RoleClient}), now: now, wantErr: ErrExpired},
		{name: "wrong key", key: otherKey, cred: good, now: now, wantErr: ErrBadCredential},
		{name: "wrong key and expired", key: otherKey, cred: good, now: now.Add(48 * time.Hour), wantErr: ErrBadCredential},
		{name: "tampered first char", key: key, cred: flip(good, 0), now: now, wantErr: ErrBadCredential},
		{name: "tampered key", key: key, cred: flip(good, 10), now: now, wantErr: ErrBadCredential},
		{name: "tampered tag", key: key, cred: flip(good, len(good)-5), now: now, wantErr: ErrBadCredential},
		{name: "tampered last char", key: key, cred: flip(good, len(good)-1), now: now, wantErr: ErrBadCredential},
		{name: "truncated", key: key, cred: good[:len(good)-4], now: now, wantErr: ErrBadCredential},
		{name: "extended", key: key, cred: good + "AAAA", now: now, wantErr: ErrBadCredential},
		{name: "padded", key: key, cred: good + "=", now: now, wantErr: ErrBadCredential},
		{name: "empty", key: key, cred: "", now: now, wantErr: ErrBadCredential},
		{name: "not base64", key: key, cred: "!!!!", now: now, wantErr: ErrBadCredential},
		{name: "admin role", key: key, cred: Issue(key, Claims{NodeID: "a", PublicKey: testPub(1), Role: wire.RoleAdmin, Expires: now.Add(time.Hour)}), now: now, wantErr: ErrBadCredential},
		{name: "zero public key", key: key, cred: Issue(key, Claims{NodeID: "a", Role: wire.RoleClient, Expires: now.Add(time.Hour)}), now: now, wantErr: ErrBadCredential},
		{name: "a token is not a credential", key: key, cred: "wrn1_eyJ1IjoiaHR0cHM6Ly94In0", now: now, wantErr: ErrBadCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Verify(tt.key, tt.cred, tt.now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify: got error %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCredentialEveryByteMatters(t *testing.T) {
	key := mustKey(t)
	now := time.Now()
	good := Issue(key, Claims{NodeID: "n1", PublicKey: testPub(7), Role: wire.RoleConnector, Expires: now.Add(time.Hour)})
	for i := range good {
		if _, err := Verify(key, flip(good, i), now); !errors.Is(err, ErrBadCredential) {
			t.Errorf("credential altered at %d: got %v, want ErrBadCredential", i, err)
		}
	}
}

func TestCredentialCanonical(t *testing.T) {
	key := mustKey(t)
	exp := time.Date(2030, 1, 2, 3, 4, 5, 999, time.FixedZone("x", 3600))
	c := Claims{NodeID: strings.Repeat("n", MaxNodeIDLen), PublicKey: testPub(3), Role: wire.RoleClient, Expires: exp}
	s := Issue(key, c)
	if s != Issue(key, c) {
		t.Fatal("Issue is not deterministic")
	}
	got, err := Verify(key, s, exp.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	c.Expires = exp.Truncate(time.Second).UTC()
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	if strings.ContainsAny(s, "+/=") {
		t.Errorf("credential %q is not unpadded base64url", s)
	}
}

func TestVerifyShortKey(t *testing.T) {
	if _, err := Verify(make([]byte, 16), "x", time.Now()); err == nil || errors.Is(err, ErrBadCredential) {
		t.Errorf("Verify with a short key: got %v, want a key error", err)
	}
}

func TestNewKey(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	if len(a) != KeyLen || string(a) == string(b) {
		t.Errorf("NewKey: got %x and %x, want two different %d-byte keys", a, b, KeyLen)
	}
}

func TestHelloProof(t *testing.T) {
	key := mustKey(t)
	now := time.Now()
	c := Claims{NodeID: "n", PublicKey: testPub(9), Role: wire.RoleClient, Expires: now.Add(time.Hour)}
	nc, err := parseNodeCredential(Issue(key, c))
	if err != nil {
		t.Fatal(err)
	}
	pkt := appendHello(nil, nc, 42)
	f, err := Parse(pkt)
	if err != nil {
		t.Fatal(err)
	}
	got, tag, err := openHello(key, pkt, f, now)
	if err != nil {
		t.Fatalf("openHello: %v", err)
	}
	if diff := cmp.Diff(nc.parsed, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	if tag != nc.tag {
		t.Error("relay and node disagree on the tag")
	}
	if strings.Contains(string(pkt), string(nc.tag[:])) {
		t.Error("the HELLO carries the credential's tag")
	}
	if _, _, err := openHello(mustKey(t), pkt, f, now); !errors.Is(err, ErrBadCredential) {
		t.Errorf("openHello with another key: got %v, want ErrBadCredential", err)
	}
	if _, _, err := openHello(key, pkt, f, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("openHello after expiry: got %v, want ErrExpired", err)
	}
	for i := HeaderLen; i < len(pkt); i++ {
		bad := append([]byte(nil), pkt...)
		bad[i] ^= 1
		bf, err := Parse(bad)
		if err != nil {
			continue
		}
		if _, _, err := openHello(key, bad, bf, now); err == nil {
			t.Errorf("HELLO altered at byte %d still verifies", i)
		}
	}

	ack := appendAck(nil, &tag, 42, netipMust("198.51.100.30:4500"))
	af, err := Parse(ack)
	if err != nil {
		t.Fatal(err)
	}
	if !checkAck(nc, ack, af) {
		t.Error("genuine ACK does not verify")
	}
	ack[5] ^= 1
	if af, _ := Parse(ack); checkAck(nc, ack, af) {
		t.Error("altered ACK verifies")
	}
}

// TestMACIsHMAC checks the hand-made HMAC against crypto/hmac, for keys
// shorter than, as long as and longer than SHA-256's block.
func TestMACIsHMAC(t *testing.T) {
	for _, keyLen := range []int{16, 32, 63, 64, 65, 200} {
		for _, msgLen := range []int{0, 1, 55, 64, 600, 2000} {
			key, msg := make([]byte, keyLen), make([]byte, msgLen)
			for i := range key {
				key[i] = byte(i*7 + keyLen)
			}
			for i := range msg {
				msg[i] = byte(i*13 + msgLen)
			}
			h := hmac.New(sha256.New, key)
			h.Write([]byte(labelHello))
			h.Write(msg)
			want := h.Sum(nil)
			if got := mac(key, labelHello, msg); !bytes.Equal(got[:], want) {
				t.Errorf("key of %d bytes, message of %d: got %x, want %x", keyLen, msgLen, got, want)
			}
		}
	}
}
