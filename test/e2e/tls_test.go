package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/netlab"
)

// adminPKI is what an admin with their own certificate authority has: the
// CA's certificate (which every node must trust) and a leaf for the
// coordinator's name signed by it.
type adminPKI struct {
	CA, Cert, Key string
	// Bundle is the leaf, then its key, in one file, as haproxy takes it.
	Bundle string
}

// newAdminPKI makes a CA and a leaf for name, in dir.
func newAdminPKI(t *testing.T, dir, name string) adminPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Warren test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	p := adminPKI{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "coord.crt"), Key: filepath.Join(dir, "coord.key"), Bundle: filepath.Join(dir, "proxy.pem")}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		// The connector runs as nobody and reads the CA.
		{p.CA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644},
		{p.Cert, certPEM, 0o644},
		{p.Key, keyPEM, 0o600},
		{p.Bundle, append(append([]byte{}, certPEM...), keyPEM...), 0o600},
	} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// checkCAIssued runs what both tests share once Warren is deployed with a
// CA-issued certificate: the token carries no pin, a program that does not
// trust the CA is refused, the laptop enrolls and reaches the LAN, a
// netmap push reaches it, and both nodes acknowledge their netmaps.
func checkCAIssued(t *testing.T, lab *netlab.Lab, d *deployment) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tok, err := d.admin(ctx, "token", "create", "--role", "client", "--name", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := wire.ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Pin != "" || parsed.URL != "https://"+coordName+":8443" {
		t.Errorf("token URL %q, pin %q; want https://%s:8443 and no pin (a CA-issued certificate)", parsed.URL, parsed.Pin, coordName)
	}
	// Without SSL_CERT_FILE the system roots do not know the admin's CA.
	if out, err := lab.Output(ctx, netlab.Coord, warrenBin, "--data", d.Data, "nodes", "ls"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("admin CLI without the CA: %v, %q; want a certificate error", err, out)
	}
	if out, err := d.Up(ctx, tok); err != nil {
		t.Fatalf("warren up: %v\n%s", err, out)
	}
	if err := lab.Run(ctx, netlab.Laptop, "curl", "-sf", "--max-time", "5", "http://"+netlab.LANHostIP+":"+httpPort+"/"); err != nil {
		t.Errorf("curl through the connector: %v", err)
	}
	// A push down the stream, and the laptop's ack back up it.
	if _, err := d.admin(ctx, "routes", "add", "192.168.1.0/24", "--connector", "office"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the netmap with 192.168.1.0/24 on the laptop, acknowledged by both nodes", func() error {
		st, err := d.laptop(ctx, "status")
		if err != nil || !strings.Contains(st, "192.168.1.0/24") {
			return fmt.Errorf("laptop status: %v\n%s", err, st)
		}
		out, err := d.admin(ctx, "nodes", "ls", "--json")
		if err != nil {
			return err
		}
		var nodes []struct {
			Name   string `json:"name"`
			Online bool   `json:"online"`
			InSync bool   `json:"in_sync"`
		}
		if err := json.Unmarshal([]byte(out), &nodes); err != nil {
			return err
		}
		if len(nodes) != 2 {
			return fmt.Errorf("nodes: %s", out)
		}
		for _, n := range nodes {
			if !n.Online || !n.InSync {
				return fmt.Errorf("node %s online %t, in sync %t", n.Name, n.Online, n.InSync)
			}
		}
		return nil
	})
	if host, err := d.lanSSH(ctx, lab); err != nil {
		t.Errorf("ssh through the connector: %q, %v", host, err)
	}
}

// TestAdminCertificate: the coordinator serves an admin's own certificate
// (--tls-cert/--tls-key) for its DNS name, issued by the admin's CA; the
// nodes and the admin CLI trust that CA the way Go programs do, through
// SSL_CERT_FILE (or the system's trust store).
func TestAdminCertificate(t *testing.T) {
	lab := needLab(t)
	lan := startLANServices(t, lab)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	pki := newAdminPKI(t, dir, coordName)
	d := deployWith(t, lab, netlab.Options{
		CoordName: coordName, RelayOnly: true,
		CoordArgs: []string{"--tls-cert", pki.Cert, "--tls-key", pki.Key},
		Env:       []string{"SSL_CERT_FILE=" + pki.CA},
	})
	d.lan = lan
	checkCAIssued(t, lab, d)
}

// haproxyConfig terminates TLS for the coordinator's name on CoordIP:8443
// (HTTP/2 or HTTP/1.1) and forwards to the coordinator's plain HTTP on
// loopback. haproxy streams request and response bodies both ways at
// once, which the control stream (POST /v1/stream) needs; the timeouts
// are longer than the stream's 10 s heartbeats, and shorter than the
// quiet spell TestBehindTLSProxy waits through.
const haproxyConfig = `global
	maxconn 256
defaults
	mode http
	timeout connect 5s
	timeout client 25s
	timeout server 25s
frontend warren
	bind %s:8443 ssl crt %s alpn h2,http/1.1
	default_backend coordinator
backend coordinator
	server coordinator 127.0.0.1:8080
`

// TestBehindTLSProxy: the coordinator serves plain HTTP on loopback
// (--insecure-http) behind haproxy, which terminates TLS on the public
// address with the admin's CA-issued certificate; the relay listens on
// the public address itself (UDP, which the proxy does not carry).
// Enrollment, the control stream with its pushes and acks, and flows
// through the connector all work through the proxy.
func TestBehindTLSProxy(t *testing.T) {
	lab := needLab(t)
	lan := startLANServices(t, lab)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	pki := newAdminPKI(t, dir, coordName)
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(haproxyConfig, netlab.CoordIP, pki.Bundle)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := deployWith(t, lab, netlab.Options{
		CoordName: coordName, RelayOnly: true,
		Listen:    "127.0.0.1:8080",
		CoordArgs: []string{"--insecure-http", "--relay-listen", netlab.CoordIP + ":8443"},
		Env:       []string{"SSL_CERT_FILE=" + pki.CA},
		// The deployment waits for the admin CLI to get through the
		// proxy, so haproxy needs no wait of its own.
		BeforeCoordinator: func(context.Context) error {
			_, err := lab.Start(netlab.Coord, "haproxy", "-db", "-f", cfg)
			return err
		},
	})
	d.lan = lan
	// Nothing but the proxy reaches the coordinator's API.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lab.Run(ctx, netlab.Laptop, "curl", "-s", "-o", "/dev/null", "--max-time", "2", "http://"+netlab.CoordIP+":8080/"); err == nil {
		t.Error("the coordinator's plain HTTP is reachable from the laptop")
	}
	checkCAIssued(t, lab, d)

	// The stream outlives the proxy's 25 s idle time-outs on the 10 s
	// heartbeats alone: 30 s later a push still arrives on the laptop's
	// first stream, never reconnected.
	time.Sleep(30 * time.Second)
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.admin(ctx, "routes", "rm", "192.168.1.0/24"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "192.168.1.0/24 gone from the laptop", func() error {
		st, err := d.laptop(ctx, "status")
		if err != nil || strings.Contains(st, "192.168.1.0/24") {
			return fmt.Errorf("laptop status: %v\n%s", err, st)
		}
		return nil
	})
	if n := strings.Count(d.Coord.Output(), `msg="node connected" node=laptop `); n != 1 {
		t.Errorf("the laptop's control stream connected %d times through the proxy, want once", n)
	}
}
