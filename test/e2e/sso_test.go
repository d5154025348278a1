package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/netlab"
	"github.com/warrennet/warren/test/oidctest"
)

// helperEnv names the helper a run of this test binary is: parts of the
// SSO test that must run as Go code inside a namespace (the OpenID
// Provider, a TCP forwarder, a browser) run as this binary started again
// there with -test.run naming one TestHelper function.
const helperEnv = "WARREN_E2E_HELPER"

// Environment of the helpers.
const (
	envOIDCOut      = "WARREN_E2E_OIDC_OUT"      // provider: the directory for issuer and provider.pem
	envOIDCRedirect = "WARREN_E2E_OIDC_REDIRECT" // provider: the client's redirect URL
	envOIDCSecret   = "WARREN_E2E_OIDC_SECRET"   // provider: the client's secret
	envFwdListen    = "WARREN_E2E_FWD_LISTEN"    // provider, forward: the address to listen on
	envFwdTarget    = "WARREN_E2E_FWD_TARGET"    // forward: where to forward to
	envBrowserURL   = "WARREN_E2E_BROWSER_URL"   // browser: the link to open
	envBrowserUser  = "WARREN_E2E_BROWSER_USER"  // browser: who logs in ("": open the link only)
	envBrowserCAs   = "WARREN_E2E_BROWSER_CAS"   // browser: PEM files to trust, comma-separated
	envBrowserOut   = "WARREN_E2E_BROWSER_OUT"   // browser: the file for the page it ended on (JSON)
)

// oidcClientID is the coordinator's client at the provider.
const oidcClientID = "warren"

// oidcForwardPort is where the provider's process also listens on the
// coordinator's host, forwarding to the provider: the internet's way to
// it.
const oidcForwardPort = "9443"

// TestSSOLogin is the login half of issue 17 with the real programs: the
// real `warren up --coordinator URL` on the laptop prints a login link;
// a browser on the laptop (oidctest's Browser, in the laptop's namespace)
// opens it, is sent to the real OpenID Provider (test/oidctest, the
// zitadel OP), logs in as alice and comes back to the coordinator; `warren
// up` returns with the laptop enrolled as alice, whose groups claim puts
// her in eng; her ssh passes the tunnel; the link is single-use; and
// `warren logout` removes the node at the coordinator.
//
// The provider runs in the coordinator's namespace, listening on its
// loopback (oidctest listens on 127.0.0.1 only, and its issuer URL says
// so): the coordinator reaches it there. A browser elsewhere reaches it
// through two forwarders: one on the laptop at the same 127.0.0.1 port,
// to the coordinator's host at :9443, where the provider's process
// forwards to its loopback; the laptop's side crosses its NAT as any of
// its connections does, so the TLS the browser checks is the provider's
// own.
func TestSSOLogin(t *testing.T) {
	lab := needLab(t)
	lan := startLANServices(t, lab)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	coordURL := "https://" + netlab.CoordIP + ":8443"
	const secret = "oidc-client-secret-for-the-e2e"
	if _, err := lab.Start(netlab.Coord, "env", helperEnv+"=provider", envOIDCOut+"="+dir, envOIDCRedirect+"="+coordURL+wire.PathOIDCCallback,
		envOIDCSecret+"="+secret, envFwdListen+"="+netlab.CoordIP+":"+oidcForwardPort, exe, "-test.run=^TestHelperOIDCProvider$"); err != nil {
		t.Fatal(err)
	}
	var issuer string
	eventually(t, 20*time.Second, "the provider's issuer", func() error {
		b, err := os.ReadFile(filepath.Join(dir, "issuer"))
		issuer = strings.TrimSpace(string(b))
		return err
	})
	providerPEM := filepath.Join(dir, "provider.pem")
	secretFile := filepath.Join(dir, "oidc-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := deployWith(t, lab, netlab.Options{
		// The coordinator trusts the provider's self-signed certificate.
		Env: []string{"SSL_CERT_FILE=" + providerPEM},
		CoordArgs: []string{"--oidc-issuer", issuer, "--oidc-client-id", oidcClientID, "--oidc-client-secret-file", secretFile,
			"--oidc-allowed-domains", "example.com"},
	})

	// The laptop's way to the provider, as its issuer URL names it.
	u, err := url.Parse(issuer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Start(netlab.Laptop, "env", helperEnv+"=forward", envFwdListen+"="+u.Host,
		envFwdTarget+"="+netlab.CoordIP+":"+oidcForwardPort, exe, "-test.run=^TestHelperForward$"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the provider's discovery from the laptop", func() error {
		return lab.Run(ctx, netlab.Laptop, "curl", "-sf", "--max-time", "2", "--cacert", providerPEM, issuer+"/.well-known/openid-configuration")
	})

	// warren up with no token: a login.
	pin := regexp.MustCompile(`pin=([0-9a-f]{64})`).FindStringSubmatch(d.Coord.Output())
	if pin == nil {
		t.Fatalf("the coordinator's log has no pin:\n%s", d.Coord.Output())
	}
	up, err := lab.Start(netlab.Laptop, warrenBin, "--socket", d.Socket, "up", "--coordinator", coordURL, "--pin", pin[1])
	if err != nil {
		t.Fatal(err)
	}
	var link, code string
	eventually(t, 20*time.Second, "warren up printing a login link", func() error {
		m := regexp.MustCompile(`To log in, open: (\S+) \(code (\S+)\)`).FindStringSubmatch(up.Output())
		if m == nil {
			return fmt.Errorf("output %q", up.Output())
		}
		link, code = m[1], m[2]
		return nil
	})
	if !strings.HasPrefix(link, coordURL+wire.PathLoginPage+"/") {
		t.Errorf("login link %s is not the coordinator's %s/…", link, wire.PathLoginPage)
	}
	cas := providerPEM + "," + filepath.Join(d.Data, "tls.crt")
	page := browse(t, ctx, lab, exe, dir, link, oidctest.Alice, cas)
	if page.Status != 200 || !strings.Contains(page.Body, oidctest.Alice) || !strings.Contains(page.Body, code) {
		t.Errorf("the page after logging in (%s, %d) does not name alice and the code %s:\n%s", page.URL, page.Status, code, page.Body)
	}
	eventually(t, 40*time.Second, "warren up returning", func() error {
		if exited, err := up.Exited(); !exited {
			return errors.New("still waiting")
		} else if err != nil {
			t.Fatalf("warren up: %v\n%s", err, up.Output())
		}
		return nil
	})

	// The laptop is alice's; her groups claim puts her in eng.
	if st, err := d.laptop(ctx, "status"); err != nil || !strings.Contains(st, oidctest.Alice) {
		t.Errorf("warren status after the login: %v\n%s", err, st)
	}
	out, err := d.admin(ctx, "users", "ls", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var users []wire.User
	if err := json.Unmarshal([]byte(out), &users); err != nil {
		t.Fatalf("users ls --json: %v\n%s", err, out)
	}
	if len(users) != 1 || users[0].Email != oidctest.Alice || users[0].Source != wire.UserSourceSSO ||
		len(users[0].Groups) != 1 || users[0].Groups[0] != "eng" || len(users[0].Nodes) != 1 {
		t.Errorf("users ls: %+v; want alice, from sso, in eng, with one node", users)
	}
	if host, err := lan.ssh(ctx, lab, netlab.Laptop, "hostname"); err != nil || strings.TrimSpace(host) == "" {
		t.Errorf("ssh from the laptop enrolled by a login: %q, %v", host, err)
	}

	// The link is single-use: opened again, it says so.
	again := browse(t, ctx, lab, exe, dir, link, "", cas)
	if again.Status != 410 {
		t.Errorf("the login link opened again: %d at %s, want 410\n%s", again.Status, again.URL, again.Body)
	}

	// warren logout removes the node at the coordinator.
	if out, err := d.laptop(ctx, "logout"); err != nil || !strings.Contains(out, "removed") {
		t.Errorf("warren logout: %v\n%s", err, out)
	}
	if out, err := d.admin(ctx, "nodes", "ls"); err != nil || strings.Contains(out, oidctest.Alice) {
		t.Errorf("nodes ls after logout: %v\n%s", err, out)
	}
}

// browsed is the page a browser helper ended on.
type browsed struct {
	URL    string `json:"url"`
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// browse opens link in a browser on the laptop, logging in as user at
// the provider ("": only opening it), and returns the page it ended on.
func browse(t *testing.T, ctx context.Context, lab *netlab.Lab, exe, dir, link, user, cas string) browsed {
	t.Helper()
	f, err := os.CreateTemp(dir, "page-*.json")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := lab.Output(ctx, netlab.Laptop, "env", helperEnv+"=browser", envBrowserURL+"="+link, envBrowserUser+"="+user,
		envBrowserCAs+"="+cas, envBrowserOut+"="+f.Name(), exe, "-test.run=^TestHelperBrowser$"); err != nil {
		t.Fatalf("the browser: %v\n%s", err, out)
	}
	var p browsed
	b, err := os.ReadFile(f.Name())
	if err == nil {
		err = json.Unmarshal(b, &p)
	}
	if err != nil {
		t.Fatalf("the browser's page: %v\n%s", err, b)
	}
	return p
}

// helper skips unless this run of the binary is the named helper.
func helper(t *testing.T, name string) {
	if os.Getenv(helperEnv) != name {
		t.Skipf("a helper process of an end-to-end test (%s=%s)", helperEnv, name)
	}
}

// untilSignalled blocks until the process is asked to stop (netlab's
// Proc.Stop sends SIGTERM).
func untilSignalled() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
}

// TestHelperOIDCProvider runs the OpenID Provider with the coordinator as
// its client, writes its issuer and certificate, and forwards
// envFwdListen to it, until signalled.
func TestHelperOIDCProvider(t *testing.T) {
	helper(t, "provider")
	out := os.Getenv(envOIDCOut)
	p := oidctest.Start(t, oidctest.Client{ID: oidcClientID, Secret: os.Getenv(envOIDCSecret), RedirectURLs: []string{os.Getenv(envOIDCRedirect)}})
	u, err := url.Parse(p.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", os.Getenv(envFwdListen))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		forward(ln, u.Host)
	}()
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(out, "provider.pem"), pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	// The issuer last: the test waits for it.
	if err := os.WriteFile(filepath.Join(out, "issuer"), []byte(p.Issuer+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	untilSignalled()
}

// TestHelperForward forwards TCP from envFwdListen to envFwdTarget until
// signalled.
func TestHelperForward(t *testing.T) {
	helper(t, "forward")
	ln, err := net.Listen("tcp", os.Getenv(envFwdListen))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		forward(ln, os.Getenv(envFwdTarget))
	}()
	untilSignalled()
}

// forward accepts on ln until it is closed and copies each connection
// to and from target. A connection lives until either side ends it or the
// process exits.
func forward(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(u, c); done <- struct{}{} }()
			go func() { io.Copy(c, u); done <- struct{}{} }()
			<-done
		}()
	}
}

// TestHelperBrowser opens envBrowserURL as a person's browser would,
// logging in as envBrowserUser at the provider when it asks, and writes
// the page it ended on to envBrowserOut.
func TestHelperBrowser(t *testing.T) {
	helper(t, "browser")
	pool := x509.NewCertPool()
	for _, f := range strings.Split(os.Getenv(envBrowserCAs), ",") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !pool.AppendCertsFromPEM(b) {
			t.Fatalf("no certificate in %s", f)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := oidctest.NewBrowser(pool)
	var page *oidctest.Page
	var err error
	if user := os.Getenv(envBrowserUser); user != "" {
		page, err = b.Login(ctx, os.Getenv(envBrowserURL), user, oidctest.Password(user))
	} else {
		page, err = b.Get(ctx, os.Getenv(envBrowserURL))
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(browsed{URL: page.URL.String(), Status: page.StatusCode, Body: page.Body})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv(envBrowserOut), out, 0o644); err != nil {
		t.Fatal(err)
	}
}
