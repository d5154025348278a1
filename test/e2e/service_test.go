package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrennet/warren/dist"
	"github.com/warrennet/warren/test/netlab"
)

// TestDaemonWithinServiceCapabilities runs the laptop daemon with what
// the system unit (dist/systemd/warren.service) leaves root: the unit's
// CapabilityBoundingSet= and no new privileges, applied by setpriv. It
// proves that set is enough for all the daemon does as root: warren up
// creates the TUN and its routes (CAP_NET_ADMIN), ssh reaches lanhost
// through them, and warren ssh-cert writes alice's certificate into her
// 0700 ~/.ssh and hands it to her (CAP_DAC_OVERRIDE, CAP_CHOWN,
// CAP_FOWNER). Take one away from the unit and this test fails.
func TestDaemonWithinServiceCapabilities(t *testing.T) {
	lab := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	unit, err := dist.Files.ReadFile(dist.SystemdSystem)
	if err != nil {
		t.Fatal(err)
	}
	var caps []string
	for l := range strings.Lines(string(unit)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "CapabilityBoundingSet="); ok {
			// setpriv names them without CAP_: net_admin.
			for _, c := range strings.Fields(v) {
				caps = append(caps, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
			}
		}
	}
	if len(caps) == 0 {
		t.Fatalf("%s bounds no capability", dist.SystemdSystem)
	}
	bounding := "-all,+" + strings.Join(caps, ",+")

	accts, err := lab.AddAccounts(netlab.Laptop, "alice")
	if err != nil {
		t.Fatal(err)
	}
	alice := accts[0]
	d := deployWith(t, lab, netlab.Options{DaemonUnder: []string{"setpriv", "--bounding-set", bounding, "--inh-caps", "-all", "--no-new-privs", "--"}})
	d.lan = startLANServices(t, lab)

	tok, err := d.admin(ctx, "token", "create", "--role", "client", "--name", "alice-laptop", "--user", "alice@example.com")
	if err != nil {
		t.Fatalf("warren token create: %v\n%s", err, tok)
	}
	if out, err := d.Up(ctx, tok); err != nil {
		t.Fatalf("warren up: %v\n%s\ndaemon:\n%s", err, out, d.Daemon.Output())
	}
	if out, err := d.lanSSH(ctx, lab); err != nil {
		t.Fatalf("ssh to lanhost through the tunnel: %v\n%s", err, out)
	}

	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(sshPolicy("ec2-user")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := d.admin(ctx, "policy", "set", policy); err != nil {
		t.Fatalf("warren policy set: %v\n%s", err, out)
	}
	if out, err := d.laptop(ctx, "set", "--operator", alice.Name); err != nil {
		t.Fatalf("warren set --operator: %v\n%s", err, out)
	}
	if out, err := lab.OutputAs(ctx, netlab.Laptop, alice, nil, "sh", "-c", `umask 077 && mkdir -p ~/.ssh && ssh-keygen -q -t ed25519 -N "" -f ~/.ssh/id_ed25519`); err != nil {
		t.Fatalf("ssh-keygen as alice: %v\n%s", err, out)
	}
	if out, err := d.LaptopAs(ctx, alice, "ssh-cert"); err != nil {
		t.Fatalf("warren ssh-cert as alice: %v\n%s\ndaemon:\n%s", err, out, d.Daemon.Output())
	}
	cert := filepath.Join(alice.Home, ".ssh", "id_ed25519-cert.pub")
	fi, err := os.Lstat(cert)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != alice.UID || fi.Mode() != 0o644 {
		t.Errorf("%s: mode %v, owner %+v; want alice's (uid %d), 0644", cert, fi.Mode(), fi.Sys(), alice.UID)
	}
}
