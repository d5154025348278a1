package coordclient_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

const sshPolicy = `{
  "rules": [{"from": ["user:alice@example.com"], "to": ["192.168.0.0/24:443"]}],
  "ssh": [{"from": ["user:alice@example.com"], "to": ["192.168.0.0/24"], "as": ["alice", "deploy"]}],
}`

func sshKeyLine(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(k))
}

// enrollUser enrolls a client whose token names user ("" for none).
func enrollUser(t *testing.T, s *coordtest.Server, name, user string, key byte) wire.EnrollResponse {
	t.Helper()
	tok := s.Token(t, wire.CreateTokenRequest{Role: wire.RoleClient, Name: name, User: user})
	resp, err := s.Coord.Enroll(context.Background(), tok.Secret, wire.EnrollRequest{PublicKey: wire.Key{key, 31: 0x42}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestNodeClientSSHCert(t *testing.T) {
	s := coordtest.Start(t, coordtest.Options{SSHCertMaxValidity: 4 * time.Hour})
	ctx := context.Background()
	laptop := enrollUser(t, s, "laptop", "alice@example.com", 1)
	kiosk := enrollUser(t, s, "kiosk", "", 2)
	office := s.Enroll(t, wire.RoleConnector, "office", wire.Key{3, 31: 0x42})
	n := newNodeClient(t, s.URL, s.Pin, laptop.Credential)
	line := sshKeyLine(t)

	if _, err := n.SSHCert(ctx, line, 0); codeOf(err) != wire.CodeNoPrincipals {
		t.Errorf("SSHCert under allow-all = %v, want %s", err, wire.CodeNoPrincipals)
	}
	s.SetPolicy(t, sshPolicy)
	before := time.Now()
	resp, err := n.SSHCert(ctx, line, 12*time.Hour)
	if err != nil {
		t.Fatalf("SSHCert: %v", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(resp.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok || cert.KeyId != "alice@example.com" || resp.KeyID != cert.KeyId || cert.Serial != resp.Serial ||
		strings.Join(cert.ValidPrincipals, ",") != "alice,deploy" {
		t.Errorf("certificate %+v for response %+v", cert, resp)
	}
	// 12h asked, 4h given: the response says so.
	if got := resp.ValidBefore.Sub(before); got > 4*time.Hour+time.Minute || got < 4*time.Hour-time.Minute {
		t.Errorf("valid for %v from now, want the cap of 4h", got)
	}

	admin := newAdmin(t, s.Admin)
	ca, err := admin.SSHCA(ctx)
	if err != nil || len(ca.Keys) != 1 || ssh.FingerprintSHA256(cert.SignatureKey) != ca.Keys[0].Fingerprint {
		t.Fatalf("SSHCA = %+v, %v; want the key that signed", ca, err)
	}
	log, err := admin.SSHCertLog(ctx, "alice@example.com", 10)
	if err != nil || len(log) != 1 || log[0].Serial != resp.Serial || log[0].Node != "laptop" {
		t.Errorf("SSHCertLog = %+v, %v", log, err)
	}
	rotated, err := admin.RotateSSHCA(ctx, time.Hour)
	if err != nil || len(rotated.Keys) != 2 || rotated.Keys[1].State != wire.SSHCANext {
		t.Errorf("RotateSSHCA = %+v, %v", rotated, err)
	}

	for _, tt := range []struct {
		name, cred, key, code string
	}{
		{"a client without a user", kiosk.Credential, line, wire.CodeForbidden},
		{"a connector", office.Credential, line, wire.CodeForbidden},
		{"a certificate", laptop.Credential, resp.Certificate, wire.CodeInvalid},
		{"a removed node", "gone", line, wire.CodeUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newNodeClient(t, s.URL, s.Pin, tt.cred).SSHCert(ctx, tt.key, 0)
			if codeOf(err) != tt.code || strings.Contains(err.Error(), "\n") {
				t.Errorf("SSHCert = %v, want code %s in one line", err, tt.code)
			}
		})
	}
	if _, err := admin.SSHCertLog(ctx, "", 20000); codeOf(err) != wire.CodeInvalid {
		t.Errorf("SSHCertLog(limit 20000) = %v, want %s", err, wire.CodeInvalid)
	}
	if _, err := admin.RotateSSHCA(ctx, -time.Hour); codeOf(err) != wire.CodeInvalid {
		t.Errorf("RotateSSHCA(-1h) = %v, want %s", err, wire.CodeInvalid)
	}
}
