package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/test/netlab"
)

// The userspace daemon's proxies, as the README has them.
const (
	socksAddr = "127.0.0.1:1080"
	httpAddr  = "127.0.0.1:1081"
)

// netmapName is a named host (`warren hosts add`) for lanhost: the
// daemon resolves it from its netmap.
const netmapName = "buildbox"

// whoamiPort is where whoamiServer listens.
const whoamiPort = "8090"

// whoamiServer, run by python3 with an address, answers every HTTP GET
// with the address the connection came from.
const whoamiServer = `
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = (self.client_address[0] + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *args):
        pass
s = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H)
print("listening", flush=True)
s.serve_forever()
`

// startWhoami starts whoamiServer in role's namespace on addr.
func startWhoami(t *testing.T, lab *netlab.Lab, role, addr string) {
	t.Helper()
	p, err := lab.Start(role, "python3", "-c", whoamiServer, addr, whoamiPort)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the whoami server in "+role, func() error {
		if !strings.Contains(p.Output(), "listening") {
			return fmt.Errorf("output so far: %q", p.Output())
		}
		return nil
	})
}

// osState is what a laptop's kernel shows of its network: links, IPv4
// and IPv6 routes of every table, and policy rules, as `ip -j` prints
// them.
type osState map[string]any

func readOSState(ctx context.Context, t *testing.T, lab *netlab.Lab) osState {
	t.Helper()
	s := osState{}
	for name, args := range map[string][]string{
		"links":       {"-j", "link", "show"},
		"addresses":   {"-j", "addr", "show"},
		"routes ipv4": {"-4", "-j", "route", "show", "table", "all"},
		"routes ipv6": {"-6", "-j", "route", "show", "table", "all"},
		"rules ipv4":  {"-4", "-j", "rule", "show"},
		"rules ipv6":  {"-6", "-j", "rule", "show"},
	} {
		out, err := lab.Output(ctx, netlab.Laptop, "ip", args...)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		s[name] = v
	}
	return s
}

// TestUserspaceClient is issue 18's laptop without root, with the real
// programs: `warren daemon --userspace` runs as carol, an ordinary user
// who exists only in the laptop's namespace (netlab.AddAccounts), with
// no capability; `warren up` enrolls it with a token; then, through it:
// OpenSSH with `ProxyCommand warren nc %h %p` (given with -o, and as the
// README's ~/.ssh/config lines) logs in to lanhost; curl fetches a file
// intact through SOCKS5 (by address and by a name the laptop's hosts
// file knows, and by a named host only the netmap knows) and through the
// HTTP proxy (absolute URI and CONNECT); a
// DNS question reaches lanhost's dnsmasq through SOCKS5 UDP ASSOCIATE;
// a destination outside the routes (the home router) is dialed directly,
// so it sees the laptop's own address while lanhost sees the
// connector's. `warren status` and `warren why --quiet` answer on the
// user's own socket. The daemon ran as carol's uid with no capability,
// its state and socket are carol's, and the laptop's kernel has the
// same links, addresses, routes and rules afterwards as before it
// started: no TUN, no route.
func TestUserspaceClient(t *testing.T) {
	lab := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	lan, err := lab.StartLAN(ctx, dir, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	startWhoami(t, lab, netlab.LANHost, netlab.LANHostIP)
	startWhoami(t, lab, netlab.HomeGW, netlab.HomeLANGW)
	accts, err := lab.AddAccounts(netlab.Laptop, "carol")
	if err != nil {
		t.Fatal(err)
	}
	carol := accts[0]
	// A name only the laptop's hosts file knows: the proxy resolves it
	// as the laptop would (SOCKS5 domain addresses).
	if err := lab.AddHosts(netlab.Laptop, map[string]string{lanName: netlab.LANHostIP}); err != nil {
		t.Fatal(err)
	}
	d := deployWith(t, lab, netlab.Options{NoDaemon: true})
	// A name only the netmap knows, which the daemon resolves first.
	if out, err := d.admin(ctx, "hosts", "add", netmapName, netlab.LANHostIP); err != nil {
		t.Fatalf("warren hosts add: %v\n%s", err, out)
	}
	before := readOSState(ctx, t, lab)

	u, err := d.StartUserspaceDaemon(ctx, carol, "--socks5", socksAddr, "--http-proxy", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := d.admin(ctx, "token", "create", "--role", "client", "--name", "carol-laptop")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := u.Up(ctx, tok); err != nil {
		t.Fatalf("warren up as carol: %v\n%s", err, out)
	}
	// as runs a program on the laptop as carol, in the daemon's
	// environment (its runtime directory, warren on PATH).
	as := func(name string, args ...string) (string, error) {
		return lab.OutputAs(ctx, netlab.Laptop, carol, u.Env, name, args...)
	}
	lanURL := "http://" + netlab.LANHostIP + ":" + httpPort

	// HTTP through SOCKS5; the first may wait for the tunnel's path.
	eventually(t, 15*time.Second, "curl --socks5-hostname "+lanURL, func() error {
		body, err := as("curl", "-sf", "--max-time", "3", "--socks5-hostname", socksAddr, lanURL+"/")
		if err == nil && body != "hello from lanhost\n" {
			err = fmt.Errorf("body %q", body)
		}
		return err
	})
	// fetch downloads /big.bin as carol with curl's proxy arguments and
	// checks it arrived whole.
	fetch := func(what string, args ...string) {
		t.Helper()
		dst := filepath.Join(carol.Home, "big.bin")
		os.Remove(dst)
		args = append([]string{"-sf", "--max-time", "30", "-o", dst}, args...)
		if out, err := as("curl", args...); err != nil {
			t.Errorf("%s: %v\n%s", what, err, out)
			return
		}
		if got := fileSum(t, dst); got != lan.BigSum {
			t.Errorf("%s: SHA-256 %s, want %s", what, got, lan.BigSum)
		}
	}
	fetch("curl --socks5-hostname", "--socks5-hostname", socksAddr, lanURL+"/big.bin")
	fetch("curl --socks5-hostname by name", "--socks5-hostname", socksAddr, "http://"+lanName+":"+httpPort+"/big.bin")
	fetch("curl --proxy http://", "--proxy", "http://"+httpAddr, lanURL+"/big.bin")
	fetch("curl --proxy http:// --proxytunnel (CONNECT)", "--proxy", "http://"+httpAddr, "--proxytunnel", lanURL+"/big.bin")

	// The split decision: lanhost is reached through the connector, the
	// home router (not routed) directly from the laptop's own address.
	for _, c := range []struct{ url, want string }{
		{"http://" + netlab.LANHostIP + ":" + whoamiPort + "/", netlab.ConnIP},
		{"http://" + netmapName + ":" + whoamiPort + "/", netlab.ConnIP},
		{"http://" + netlab.HomeLANGW + ":" + whoamiPort + "/", netlab.LaptopIP},
	} {
		for _, proxy := range []string{"--socks5-hostname", "--proxy"} {
			addr := socksAddr
			if proxy == "--proxy" {
				addr = "http://" + httpAddr
			}
			got, err := as("curl", "-sf", "--max-time", "5", proxy, addr, c.url)
			if err != nil || strings.TrimSpace(got) != c.want {
				t.Errorf("curl %s %s %s: %q, %v; want the flow from %s", proxy, addr, c.url, got, err, c.want)
			}
		}
	}

	// DNS over UDP through SOCKS5 UDP ASSOCIATE, to lanhost's dnsmasq.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := lab.Output(ctx, netlab.Laptop, "env", helperEnv+"=socks5dns", envSOCKS5+"="+socksAddr,
		envDNSServer+"="+netlab.LANHostIP+":53", envDNSName+"="+lanName, exe, "-test.run=^TestHelperSOCKS5DNS$")
	// The helper prints the addresses, then go test's own PASS.
	if first, _, _ := strings.Cut(out, "\n"); err != nil || first != netlab.LANHostIP {
		t.Errorf("DNS for %s through SOCKS5 UDP ASSOCIATE: %q, %v; want %s", lanName, out, err, netlab.LANHostIP)
	}

	// OpenSSH with warren nc as its ProxyCommand, as carol, with
	// lanhost's key copied to her.
	key := filepath.Join(carol.Home, "id_lan")
	b, err := os.ReadFile(lan.SSHKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(key, carol.UID, carol.GID); err != nil {
		t.Fatal(err)
	}
	sshOpts := []string{"-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"}
	onLANHostAs := func(host, what string, args ...string) {
		t.Helper()
		args = append(append(args, sshOpts...), "root@"+host, "ip", "-o", "-4", "addr", "show", "eth0")
		if out, err := as("ssh", args...); err != nil || !strings.Contains(out, netlab.LANHostIP+"/24") {
			t.Errorf("ssh root@%s %s: %q, %v; want a shell on lanhost", host, what, out, err)
		}
	}
	onLANHost := func(what string, args ...string) {
		t.Helper()
		onLANHostAs(netlab.LANHostIP, what, args...)
	}
	onLANHost("-o ProxyCommand='warren nc %h %p'", "-F", "/dev/null", "-o", "ProxyCommand=warren nc %h %p")
	// The README's ~/.ssh/config lines, both forms.
	for name, config := range map[string]string{
		"Match exec": "Match exec \"warren why --quiet %h\"\n    ProxyCommand warren nc %h %p\n",
		"Host":       "Host 192.168.0.*\n    ProxyCommand warren nc %h %p\n",
	} {
		f := filepath.Join(carol.Home, "ssh_config")
		if err := os.WriteFile(f, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		onLANHost("with the README's "+name+" block", "-F", f)
		if name == "Match exec" {
			onLANHostAs(netmapName, "with the README's Match exec block, by a netmap name", "-F", f)
		}
	}

	// Status and why on carol's own socket.
	if st, err := u.Run(ctx, "status"); err != nil || !strings.Contains(st, "userspace") ||
		!strings.Contains(st, socksAddr) || !strings.Contains(st, httpAddr) || !strings.Contains(st, "192.168.0.0/24") {
		t.Errorf("warren status as carol: %v\n%s\nwant the userspace mode, both proxies and the route", err, st)
	}
	for _, c := range []struct {
		dest string
		code int
	}{{netlab.LANHostIP, 0}, {netmapName, 0}, {netlab.HomeLANGW, 1}, {netlab.CoordIP, 1}, {"not an address!", 2}} {
		out, err := u.Run(ctx, "why", "--quiet", c.dest)
		if code := exitCode(err); code != c.code || out != "" {
			t.Errorf("warren why --quiet %q: exit %d, output %q (%v); want exit %d and no output", c.dest, code, out, err, c.code)
		}
	}

	// The daemon is carol's: her uid, no capability, her state and socket.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", u.Proc.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", u.Proc.Pid()))
	if !bytes.Contains(cmdline, []byte("--userspace")) {
		t.Errorf("process %d is not the daemon: %q", u.Proc.Pid(), cmdline)
	}
	id := strconv.Itoa(carol.UID)
	for field, want := range map[string]string{"Uid": strings.Repeat(id+" ", 4), "Gid": strings.Repeat(id+" ", 4), "CapEff": "0000000000000000", "CapPrm": "0000000000000000"} {
		if got := procField(string(status), field); got != strings.TrimSpace(want) {
			t.Errorf("daemon's %s: %q, want %q", field, got, strings.TrimSpace(want))
		}
	}
	for _, p := range []string{filepath.Join(carol.Home, ".local", "state", "warren"), filepath.Join(carol.Home, "run", "warren", "warren.sock")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("the userspace default: %v", err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != carol.UID {
			t.Errorf("%s is owned by uid %d, want carol's %d", p, st.Uid, carol.UID)
		}
	}

	// Nothing changed in the laptop's kernel.
	if diff := cmp.Diff(before, readOSState(ctx, t, lab)); diff != "" {
		t.Errorf("the laptop's network changed while the userspace daemon ran (-before +after):\n%s", diff)
	}
}

// exitCode is a command's exit status: 0 for no error, -1 when it did not
// run to an exit.
func exitCode(err error) int {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	default:
		return -1
	}
}

// procField returns a field of /proc/PID/status with its tabs as single
// spaces.
func procField(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}
