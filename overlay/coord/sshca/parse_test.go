package sshca_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/warrennet/warren/overlay/coord/sshca"
)

func authorizedLine(t *testing.T, key any) string {
	t.Helper()
	pub, err := ssh.NewPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " user@host"
}

func TestParsePublicKey(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ed := authorizedLine(t, edPub)
	ca := open(t, t.TempDir(), newClock())
	_, upub := userKey(t)
	cert, _, err := ca.Sign(upub, "a@example.com", []string{"a"}, time.Now(), time.Now().Add(time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, line, want string // want "" for accepted
	}{
		{"ed25519", ed, ""},
		{"ed25519 without comment", strings.TrimSuffix(ed, " user@host"), ""},
		{"ed25519 with spaces around", "  " + ed + "\n", ""},
		{"ecdsa p256", authorizedLine(t, &ec256.PublicKey), ""},
		{"ecdsa p384", authorizedLine(t, &ec384.PublicKey), ""},
		{"ecdsa p521", authorizedLine(t, &ec521.PublicKey), ""},
		{"rsa 2048", authorizedLine(t, &rsa2048.PublicKey), ""},
		{"rsa 1024", authorizedLine(t, &rsa1024.PublicKey), "RSA key of 1024 bits: want 2048 to 16384 bits"},
		{"certificate", strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))), "that is a certificate, not a public key"},
		{"dsa", "ssh-dss AAAAB3NzaC1kc3MAAACBAP user@host", "DSA keys are not accepted"},
		{"empty", "  ", "no SSH public key given"},
		{"garbage", "hello world", "not an SSH public key"},
		{"bad base64", "ssh-ed25519 !!!! user@host", "not an SSH public key"},
		{"options", `from="10.0.0.1" ` + ed, "without authorized_keys options"},
		{"two keys", ed + "\n" + ed, "on one line"},
		{"private key", "-----BEGIN OPENSSH PRIVATE KEY-----", "not an SSH public key"},
		{"too long", "ssh-ed25519 " + strings.Repeat("A", sshca.MaxKeyLine), "more than 8192"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := sshca.ParsePublicKey(tt.line)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want == "" && pub == nil:
				t.Errorf("no key")
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error holding %q", err, tt.want)
			case err != nil && strings.ContainsAny(err.Error(), "\r\n"):
				t.Errorf("error %q is not one line", err)
			}
		})
	}
}

// FuzzParsePublicKey: whatever comes in, ParsePublicKey does not panic,
// and a key it accepts is one the CA certifies and signs.
func FuzzParsePublicKey(f *testing.F) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, s := range []string{
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host",
		"ssh-dss AAAA", "ssh-rsa AAAA", "", "x", `command="x" ssh-ed25519 AAAA`,
		"ssh-ed25519-cert-v01@openssh.com AAAA",
	} {
		f.Add(s)
	}
	pub, _ := ssh.NewPublicKey(edPub)
	f.Add(string(ssh.MarshalAuthorizedKey(pub)))
	pub, _ = ssh.NewPublicKey(&ec.PublicKey)
	f.Add(string(ssh.MarshalAuthorizedKey(pub)))
	ca, err := sshca.Open(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line string) {
		pub, err := sshca.ParsePublicKey(line)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error %q is not one line", err)
			}
			return
		}
		if _, ok := pub.(*ssh.Certificate); ok {
			t.Fatalf("accepted a certificate: %q", line)
		}
		switch pub.Type() {
		case ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoSKECDSA256, ssh.KeyAlgoRSA:
		default:
			t.Fatalf("accepted a %s key: %q", pub.Type(), line)
		}
		again, err := sshca.ParsePublicKey(string(ssh.MarshalAuthorizedKey(pub)))
		if err != nil || !bytes.Equal(again.Marshal(), pub.Marshal()) {
			t.Fatalf("the accepted key does not round-trip: %v", err)
		}
		now := time.Now()
		if _, _, err := ca.Sign(pub, "a@example.com", []string{"a"}, now, now.Add(time.Hour), 1); err != nil {
			t.Fatalf("an accepted key is not signed: %v", err)
		}
	})
}
