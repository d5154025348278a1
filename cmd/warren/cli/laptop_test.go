package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
)

// laptopDaemon is a daemon for the laptop commands' tests: it records
// what the CLI asked and answers as scripted. The engine's own behaviour
// is overlay/client's tests' business.
type laptopDaemon struct {
	mu       sync.Mutex // guards the fields below
	up       []ctl.UpRequest
	loggedIn []ctl.UpRequest
	edits    []ctl.PrefsEdit
	certReq  []ctl.SSHCertRequest
	logout   ctl.LogoutResult
	echo     string // the address DialContext connects "echo" to
}

func (d *laptopDaemon) Status(context.Context) ctl.Status { return ctl.Status{} }

func (d *laptopDaemon) Up(_ context.Context, req ctl.UpRequest, progress func(ctl.Progress)) error {
	d.mu.Lock()
	d.up = append(d.up, req)
	d.mu.Unlock()
	return d.steps(req, progress)
}

func (d *laptopDaemon) Login(_ context.Context, req ctl.UpRequest, progress func(ctl.Progress)) error {
	d.mu.Lock()
	d.loggedIn = append(d.loggedIn, req)
	d.mu.Unlock()
	progress(ctl.Progress{Message: "logged out: node alice-laptop removed at the coordinator"})
	return d.steps(req, progress)
}

func (d *laptopDaemon) steps(req ctl.UpRequest, progress func(ctl.Progress)) error {
	if req.Coordinator == "" {
		return errors.New("no coordinator to log in to: give it once with warren login --coordinator URL")
	}
	progress(ctl.Progress{Message: "starting a login at the coordinator at " + req.Coordinator})
	link := req.Coordinator + "/login/Zm9v"
	progress(ctl.Progress{Message: "to log in, open: " + link + " (code ABCD-EFGH)", LoginURL: link, Code: "ABCD-EFGH"})
	progress(ctl.Progress{Message: "logged in for alice@example.com: enrolled as alice-laptop, overlay address 100.96.0.2"})
	return nil
}

func (d *laptopDaemon) Logout(context.Context) (ctl.LogoutResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logout, nil
}

func (d *laptopDaemon) Down(context.Context) error { return nil }

func (d *laptopDaemon) Why(context.Context, ctl.WhyQuery) (ctl.Why, error) {
	return ctl.Why{}, errors.New("not here")
}

func (d *laptopDaemon) Prefs(context.Context) ctl.Prefs { return ctl.Prefs{} }

func (d *laptopDaemon) EditPrefs(_ context.Context, e ctl.PrefsEdit) (ctl.Prefs, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.edits = append(d.edits, e)
	if e.Operator != nil && *e.Operator == "nosuchuser" {
		return ctl.Prefs{}, errors.New(`no local user named "nosuchuser"`)
	}
	p := ctl.Prefs{}
	if e.Operator != nil && *e.Operator != "" {
		p.Operator = &ctl.Operator{Name: *e.Operator, UID: 1000}
	}
	return p, nil
}

func (d *laptopDaemon) SSHCert(_ context.Context, _ ctl.Caller, req ctl.SSHCertRequest) (ctl.SSHCertResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.certReq = append(d.certReq, req)
	return ctl.SSHCertResult{
		Path: strings.TrimSuffix(req.KeyPath, ".pub") + "-cert.pub", KeyID: "alice@example.com", Principals: []string{"alice", "deploy"}, Serial: 7,
		ValidBefore: time.Now().Add(time.Hour), RenewAt: time.Now().Add(40 * time.Minute),
	}, nil
}

// DialContext connects host "echo" to the loopback echo server d.echo;
// every other host is refused.
func (d *laptopDaemon) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	d.mu.Lock()
	echo := d.echo
	d.mu.Unlock()
	if err != nil || host != "echo" || echo == "" {
		return nil, errors.New("dialing " + address + ": connection refused")
	}
	var dl net.Dialer
	return dl.DialContext(ctx, network, echo)
}

// runLaptop runs the CLI against d with the given environment; opened
// collects the links the CLI opened in a browser.
func runLaptop(t *testing.T, d *laptopDaemon, env map[string]string, args ...string) (stdout string, opened []string, err error) {
	t.Helper()
	stdout, _, err = runAgainst(t, d, Env{Getenv: func(k string) string { return env[k] }, OpenURL: func(u string) error {
		opened = append(opened, u)
		return errors.New("no browser here") // ignored
	}}, args...)
	return stdout, opened, err
}

// runAgainst runs the CLI with env (its Stdout and Stderr replaced)
// against a control socket served by b.
func runAgainst(t *testing.T, b ctl.Backend, env Env, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := ctl.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		ctl.NewServer(b, nil).Serve(ctx, ln)
	}()
	defer func() {
		cancel()
		<-served
	}()
	var out, errb bytes.Buffer
	env.Stdout, env.Stderr = &out, &errb
	app := New(env, Roles{})
	err = app.RunContext(context.Background(), Permute(app, append([]string{"warren", "--socket", sock}, args...)))
	return out.String(), errb.String(), err
}

// TestUpLogin: `warren up --coordinator URL` prints the link and the code
// and opens the link in a browser only in a desktop session of one's own.
func TestUpLogin(t *testing.T) {
	const coordURL = "https://coord.example.com:8443"
	const want = "• starting a login at the coordinator at " + coordURL + "\n" +
		"To log in, open: " + coordURL + "/login/Zm9v (code ABCD-EFGH)\n" +
		"• logged in for alice@example.com: enrolled as alice-laptop, overlay address 100.96.0.2\n" +
		"up: traffic to the routed prefixes now goes through Warren (see: warren status)\n"
	tests := []struct {
		name string
		env  map[string]string
		open bool
	}{
		{"X11", map[string]string{"DISPLAY": ":0"}, true},
		{"Wayland", map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, true},
		{"no desktop", nil, false},
		{"sudo on someone's display", map[string]string{"DISPLAY": ":0", "SUDO_USER": "alice"}, false},
		{"doas on someone's display", map[string]string{"WAYLAND_DISPLAY": "wayland-0", "DOAS_USER": "alice"}, false},
		{"pkexec on someone's display", map[string]string{"DISPLAY": ":0", "PKEXEC_UID": "1000"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &laptopDaemon{}
			out, opened, err := runLaptop(t, d, tt.env, "up", "--coordinator", coordURL, "--pin", strings.Repeat("ab", 32))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, out); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if got := len(opened) == 1 && opened[0] == coordURL+"/login/Zm9v"; got != tt.open {
				t.Errorf("opened %q, want a browser: %v", opened, tt.open)
			}
			if diff := cmp.Diff([]ctl.UpRequest{{Coordinator: coordURL, Pin: strings.Repeat("ab", 32)}}, d.up); diff != "" {
				t.Errorf("the daemon got (-want +got):\n%s", diff)
			}
		})
	}
	if _, _, err := runLaptop(t, &laptopDaemon{}, map[string]string{EnvToken: "wrn1_x"}, "up", "--coordinator", coordURL); err == nil || err.Error() != "give --coordinator (to log in) or a token, not both" {
		t.Errorf("up with both = %v", err)
	}
}

func TestLoginLogout(t *testing.T) {
	d := &laptopDaemon{}
	out, _, err := runLaptop(t, d, nil, "login")
	if err == nil || err.Error() != "no coordinator to log in to: give it once with warren login --coordinator URL" || out != "• logged out: node alice-laptop removed at the coordinator\n" {
		t.Errorf("login without a coordinator: %q, %v", out, err)
	}
	out, _, err = runLaptop(t, d, nil, "login", "--coordinator", "https://c.example.com")
	if err != nil || !strings.Contains(out, "To log in, open: https://c.example.com/login/Zm9v (code ABCD-EFGH)\n") {
		t.Errorf("login: %q, %v", out, err)
	}

	for _, tt := range []struct {
		res  ctl.LogoutResult
		want string
	}{
		{ctl.LogoutResult{Node: "alice-laptop", Removed: true}, "logged out: node alice-laptop removed at the coordinator\n"},
		{ctl.LogoutResult{Node: "alice-laptop", Error: "cannot reach the coordinator at https://c.example.com: connection refused"},
			"logged out here, but the coordinator could not be told (cannot reach the coordinator at https://c.example.com: connection refused): an admin should run warren nodes rm alice-laptop\n"},
	} {
		d.logout = tt.res
		out, _, err := runLaptop(t, d, nil, "logout")
		if err != nil || out != tt.want {
			t.Errorf("logout = %q, %v; want %q", out, err, tt.want)
		}
	}
}

func TestSetOperator(t *testing.T) {
	d := &laptopDaemon{}
	for _, tt := range []struct{ args, out, err string }{
		{"set --operator alice", "lan-wins=false operator=alice (uid 1000)\n", ""},
		{"set --operator=", "lan-wins=false\n", ""},
		{"set --operator nosuchuser", "", `no local user named "nosuchuser"`},
	} {
		out, _, err := runLaptop(t, d, nil, strings.Fields(tt.args)...)
		if out != tt.out || (err == nil) != (tt.err == "") || err != nil && err.Error() != tt.err {
			t.Errorf("%s = %q, %v; want %q, %q", tt.args, out, err, tt.out, tt.err)
		}
	}
	want := []string{"alice", "", "nosuchuser"}
	for i, e := range d.edits {
		if e.Operator == nil || *e.Operator != want[i] || e.LANWins != nil {
			t.Errorf("edit %d = %+v, want only the operator %q", i, e, want[i])
		}
	}
}

func TestSSHCertCommand(t *testing.T) {
	const pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"
	home := t.TempDir()
	real := filepath.Join(home, "keys")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(home, ".ssh")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "id_ed25519.pub"), []byte(pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "id_ed25519"), []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "junk.pub"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOME": home}
	d := &laptopDaemon{}
	out, _, err := runLaptop(t, d, env, "ssh-cert", "--validity", "2h")
	if err != nil {
		t.Fatal(err)
	}
	// The key's directory by its real path: the daemon follows no links.
	want := ctl.SSHCertRequest{PublicKey: pub, KeyPath: filepath.Join(real, "id_ed25519.pub"), Validity: wire.Duration(2 * time.Hour)}
	if diff := cmp.Diff([]ctl.SSHCertRequest{want}, d.certReq); diff != "" {
		t.Errorf("the daemon got (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(out, "certificate: "+filepath.Join(real, "id_ed25519-cert.pub")+"\nkey id: alice@example.com\nprincipals: alice, deploy\nvalid until: ") {
		t.Errorf("output:\n%s", out)
	}

	for _, tt := range []struct{ args, err string }{
		{"ssh-cert --key " + filepath.Join(home, "none.pub"), "no SSH key at " + filepath.Join(home, "none.pub") + ": generate one with ssh-keygen -t ed25519"},
		{"ssh-cert --key " + filepath.Join(real, "id_ed25519"), filepath.Join(real, "id_ed25519") + " is not a public key file (give the .pub file, e.g. --key ~/.ssh/id_ed25519.pub)"},
		{"ssh-cert --key " + filepath.Join(real, "junk.pub"), filepath.Join(real, "junk.pub") + " does not hold one SSH public key"},
		{"ssh-cert --validity -1h", "--validity -1h0m0s is not a positive duration (for example 1h)"},
	} {
		if _, _, err := runLaptop(t, d, env, strings.Fields(tt.args)...); err == nil || err.Error() != tt.err {
			t.Errorf("%s = %v, want %s", tt.args, err, tt.err)
		}
	}
	if len(d.certReq) != 1 {
		t.Errorf("refused commands reached the daemon: %+v", d.certReq[1:])
	}
}

// TestSSHCertText pins what `warren ssh-cert` prints.
func TestSSHCertText(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	printSSHCert(&buf, &ctl.SSHCertResult{
		Path: "/home/alice/.ssh/id_ed25519-cert.pub", KeyID: "alice@example.com", Principals: []string{"alice", "deploy"},
		ValidBefore: now.Add(time.Hour), RenewAt: now.Add(40 * time.Minute),
	}, now)
	golden(t, "ssh-cert.txt", buf.String())
}
