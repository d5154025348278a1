package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/test/netlab"
)

// sshPolicy lets alice ssh to the site LAN as the UNIX users as, and its
// tests say so. An ssh rule also grants TCP 22 to its destinations.
func sshPolicy(as ...string) string {
	q := func(ss []string) string {
		b, _ := json.Marshal(ss)
		return string(b)
	}
	deny := []string{"root"}
	for _, u := range []string{"ec2-user", "deploy"} {
		if !slices.Contains(as, u) {
			deny = append(deny, u)
		}
	}
	return `{
	// alice logs in to the site LAN's servers with a certificate.
	"ssh": [
		{"from": ["user:alice@example.com"], "to": ["192.168.0.0/24"], "as": ` + q(as) + `},
	],
	"tests": [
		{"user": "alice@example.com", "allow": ["192.168.0.10:22"], "deny": ["192.168.0.10:8080"],
		 "ssh_as": ` + q(as) + `, "ssh_deny_as": ` + q(deny) + `},
	],
}`
}

// TestSSHCertificate proves the SSH certificate authority end to end with
// the real OpenSSH: lanhost's sshd trusts only the coordinator's CA
// (TrustedUserCAKeys, a principals file per account, no authorized keys);
// alice, an ordinary user of her laptop and its operator, gets a
// certificate from `warren ssh-cert` that ssh-keygen -L reads as hers
// (key ID, principals the policy allows, validity), and plain `ssh
// ec2-user@192.168.0.10` logs in with it; root and an account the policy
// does not name are refused; once the policy takes ec2-user away, her next
// certificate lacks it and sshd refuses her as ec2-user; a certificate
// that expired is refused by sshd; the daemon renews a certificate before
// it expires; and the coordinator's log lists each one.
//
// No UNIX user is created on the host: alice exists only in the laptop's
// namespace, ec2-user and deploy only in lanhost's (netlab.AddAccounts).
//
// The expired certificate is a real one: asked for with the shortest
// validity the test uses (1m), copied aside (the daemon renews the
// original) and used once its ValidBefore has passed; the wait runs in
// parallel with the rest of the test.
func TestSSHCertificate(t *testing.T) {
	lab := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// alice's account on the laptop, made before the daemon starts so
	// that the daemon knows her.
	accts, err := lab.AddAccounts(netlab.Laptop, "alice")
	if err != nil {
		t.Fatal(err)
	}
	alice := accts[0]
	d := deploy(t, lab)
	admin := func(args ...string) string {
		t.Helper()
		out, err := d.admin(ctx, args...)
		if err != nil {
			t.Fatalf("warren %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	// Her laptop is enrolled as her (SSO login is proven elsewhere).
	tok := admin("token", "create", "--role", "client", "--name", "alice-laptop", "--user", "alice@example.com")
	if out, err := d.Up(ctx, tok); err != nil {
		t.Fatalf("warren up: %v\n%s", err, out)
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	admin("policy", "set", write("ec2-user.json", sshPolicy("ec2-user")))

	// lanhost's sshd trusts what `warren ssh-ca` prints, and nothing else.
	caLines := admin("ssh-ca")
	sshd, err := lab.StartCertSSHD(ctx, netlab.CertSSHDConfig{
		CAKeys:     caLines,
		Principals: map[string][]string{"ec2-user": {"ec2-user"}, "deploy": {"deploy"}},
	})
	if err != nil {
		t.Fatalf("starting sshd with the CA of `warren ssh-ca` (%q): %v", caLines, err)
	}
	caFPs := fingerprints(t, filepath.Join(sshd.Dir, "trusted_user_ca_keys"))

	// as runs a program on the laptop as alice. TZ=UTC: ssh-keygen -L
	// prints times in the local zone.
	as := func(name string, args ...string) (string, error) {
		return lab.OutputAs(ctx, netlab.Laptop, alice, []string{"TZ=UTC"}, name, args...)
	}
	mustAs := func(name string, args ...string) string {
		t.Helper()
		out, err := as(name, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	sshDir := filepath.Join(alice.Home, ".ssh")
	mustAs("sh", "-c", `umask 077 && mkdir -p ~/.ssh && printf '%s' "$1" > ~/.ssh/known_hosts`, "sh", sshd.KnownHosts())
	mustAs("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", filepath.Join(sshDir, "id_ed25519"))
	certInfoOf := func(path string) certInfo {
		t.Helper()
		out := mustAs("ssh-keygen", "-L", "-f", path)
		info, err := parseCertInfo(out)
		if err != nil {
			t.Fatalf("ssh-keygen -L -f %s: %v\n%s", path, err, out)
		}
		return info
	}
	// sshCert runs `warren ssh-cert` as alice and returns what ssh-keygen
	// reads in the certificate it wrote beside the key.
	sshCert := func(key string, args ...string) certInfo {
		t.Helper()
		if key != "" {
			args = append([]string{"--key", key + ".pub"}, args...)
		} else {
			key = filepath.Join(sshDir, "id_ed25519")
		}
		issued := time.Now()
		if out, err := d.LaptopAs(ctx, alice, append([]string{"ssh-cert"}, args...)...); err != nil {
			t.Fatalf("warren ssh-cert %s as alice: %v\n%s", strings.Join(args, " "), err, out)
		}
		cert := key + "-cert.pub"
		fi, err := os.Lstat(cert)
		if err != nil {
			t.Fatal(err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != alice.UID || !fi.Mode().IsRegular() {
			t.Errorf("%s: mode %v, owner %+v; want a regular file of alice's (uid %d)", cert, fi.Mode(), fi.Sys(), alice.UID)
		}
		info := certInfoOf(cert)
		if info.KeyID != "alice@example.com" {
			t.Errorf("%s: key ID %q, want alice@example.com", cert, info.KeyID)
		}
		if !slices.Contains(caFPs, info.CA) {
			t.Errorf("%s: signed by %s, not one of sshd's trusted CA keys %v", cert, info.CA, caFPs)
		}
		// ValidAfter is 5 minutes back (clock skew), ValidBefore the
		// validity from now.
		validity := time.Hour
		if i := slices.Index(args, "--validity"); i >= 0 {
			if validity, err = time.ParseDuration(args[i+1]); err != nil {
				t.Fatal(err)
			}
		}
		if from := issued.Add(-5 * time.Minute); info.From.Before(from.Add(-time.Minute)) || info.From.After(from.Add(time.Minute)) {
			t.Errorf("%s: valid from %v, want about %v", cert, info.From, from)
		}
		if to := issued.Add(validity); info.To.Before(to.Add(-time.Minute)) || info.To.After(to.Add(time.Minute)) {
			t.Errorf("%s: valid to %v, want about %v", cert, info.To, to)
		}
		return info
	}
	// ssh runs `ssh LOGIN@192.168.0.10 id -un` as alice: no -i, no
	// config; OpenSSH finds her key and its certificate by itself.
	ssh := func(login string, extra ...string) (string, error) {
		args := append([]string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"}, extra...)
		return as("ssh", append(args, login+"@"+netlab.LANHostIP, "id", "-un")...)
	}
	loggedIn := func(login string, extra ...string) {
		t.Helper()
		if out, err := ssh(login, extra...); err != nil || strings.TrimSpace(out) != login {
			t.Errorf("ssh %s@%s: %q, %v; want logged in as %s", login, netlab.LANHostIP, out, err, login)
		}
	}
	// refused checks that sshd refuses alice as login and logs why.
	refused := func(login, why string, extra ...string) {
		t.Helper()
		before := len(sshd.Proc.Output())
		out, err := ssh(login, extra...)
		if err == nil || !strings.Contains(err.Error(), "Permission denied (publickey)") {
			t.Errorf("ssh %s@%s: %q, %v; want Permission denied (publickey)", login, netlab.LANHostIP, out, err)
			return
		}
		eventually(t, 2*time.Second, "sshd logging "+why, func() error {
			if !strings.Contains(sshd.Proc.Output()[before:], why) {
				return fmt.Errorf("sshd's log since has no %q", why)
			}
			return nil
		})
	}
	const noPrincipal = "Certificate does not contain an authorized principal"

	// Before she is the laptop's operator, the daemon refuses her.
	if out, err := d.LaptopAs(ctx, alice, "ssh-cert"); err == nil || !strings.Contains(err.Error(), "operator") {
		t.Errorf("warren ssh-cert by a user who is not the operator: %v\n%s; want a refusal naming the operator", err, out)
	}
	if out, err := d.laptop(ctx, "set", "--operator", alice.Name); err != nil {
		t.Fatalf("warren set --operator %s: %v\n%s", alice.Name, err, out)
	}

	first := sshCert("")
	if !slices.Equal(first.Principals, []string{"ec2-user"}) {
		t.Errorf("principals %q, want [ec2-user]", first.Principals)
	}
	// The policy reaches the connector through the netmap: the first
	// login may wait for it.
	eventually(t, 10*time.Second, "ssh ec2-user@"+netlab.LANHostIP, func() error {
		if out, err := ssh("ec2-user"); err != nil || strings.TrimSpace(out) != "ec2-user" {
			return fmt.Errorf("%q, %v", out, err)
		}
		return nil
	})
	if !strings.Contains(sshd.Proc.Output(), fmt.Sprintf("ID alice@example.com (serial %d)", first.Serial)) {
		t.Errorf("sshd's log does not name the certificate (alice@example.com, serial %d)", first.Serial)
	}
	refused("root", noPrincipal)
	refused("deploy", noPrincipal)

	// A certificate asked for 1 minute, copied aside before the daemon
	// renews it, for the expiry check at the end.
	short := filepath.Join(sshDir, "id_short")
	mustAs("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop short", "-f", short)
	shortInfo := sshCert(short, "--validity", "1m")
	mustAs("sh", "-c", `umask 077 && mkdir ~/expired && cp ~/.ssh/id_short ~/.ssh/id_short-cert.pub ~/expired/`)
	expired := []string{"-o", "IdentitiesOnly=yes", "-i", filepath.Join(alice.Home, "expired", "id_short")}
	loggedIn("ec2-user", expired...) // valid yet

	// Her status shows who she is and the principals she has.
	if st, err := d.LaptopAs(ctx, alice, "status"); err != nil || !strings.Contains(st, "alice@example.com") || !strings.Contains(st, "ec2-user") {
		t.Errorf("warren status as the operator: %v\n%s\nwant her user and her ssh principal ec2-user", err, st)
	}

	// The policy takes ec2-user away: the next certificate lacks it and
	// sshd refuses her as ec2-user; as deploy she logs in.
	admin("policy", "set", write("deploy.json", sshPolicy("deploy")))
	second := sshCert("")
	if !slices.Equal(second.Principals, []string{"deploy"}) {
		t.Errorf("principals after the policy change %q, want [deploy]", second.Principals)
	}
	if second.Serial <= first.Serial {
		t.Errorf("serial %d after %d: want a later one", second.Serial, first.Serial)
	}
	refused("ec2-user", noPrincipal)
	loggedIn("deploy")

	// The daemon renews the 1-minute certificate before it expires (with
	// the principals of the policy then).
	var renewed certInfo
	eventually(t, time.Until(shortInfo.To)+5*time.Second, "the 1-minute certificate renewed", func() error {
		renewed = certInfoOf(short + "-cert.pub")
		if renewed.Serial == shortInfo.Serial {
			return fmt.Errorf("still serial %d, valid to %v", renewed.Serial, renewed.To)
		}
		return nil
	})
	if !renewed.To.After(shortInfo.To) || !slices.Equal(renewed.Principals, []string{"deploy"}) {
		t.Errorf("renewed certificate: valid to %v (the old one to %v), principals %q; want later, [deploy]", renewed.To, shortInfo.To, renewed.Principals)
	}

	// The copy expires; sshd refuses it as expired (its principal
	// ec2-user is still one ec2-user's file accepts).
	wait := time.Until(shortInfo.To) + 2*time.Second
	if wait > 2*time.Minute {
		t.Fatalf("the 1-minute certificate is valid to %v, %v from now", shortInfo.To, wait)
	}
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	refused("ec2-user", "Certificate invalid: expired", expired...)

	// The coordinator recorded every certificate it issued.
	out := admin("ssh-ca", "log", "--user", "alice@example.com", "--json")
	var recs []logRecord
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("ssh-ca log --json: %v\n%s", err, out)
	}
	for _, c := range []certInfo{first, shortInfo, second, renewed} {
		i := slices.IndexFunc(recs, func(r logRecord) bool { return r.Serial == c.Serial })
		if i < 0 {
			t.Errorf("ssh-ca log has no certificate %d:\n%s", c.Serial, out)
			continue
		}
		if r := recs[i]; r.User != "alice@example.com" || r.Node != "alice-laptop" || !slices.Equal(r.Principals, c.Principals) {
			t.Errorf("ssh-ca log's certificate %d: %+v; want alice@example.com, alice-laptop, %q", c.Serial, r, c.Principals)
		}
	}
}

// logRecord is the part of `warren ssh-ca log --json`'s records the test
// checks (wire.SSHCertRecord).
type logRecord struct {
	Serial     uint64   `json:"serial"`
	User       string   `json:"user"`
	Node       string   `json:"node"`
	Principals []string `json:"principals"`
}

// certInfo is what ssh-keygen -L says of a certificate.
type certInfo struct {
	KeyID      string
	Serial     uint64
	CA         string // the signer's fingerprint, SHA256:…
	Principals []string
	From, To   time.Time
}

// parseCertInfo reads ssh-keygen -L's output, run with TZ=UTC.
func parseCertInfo(out string) (certInfo, error) {
	var c certInfo
	var list *[]string
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			continue
		}
		// Items of a list (principals, options, extensions) are indented
		// deeper than the fields (8 spaces).
		if strings.HasPrefix(line, strings.Repeat(" ", 9)) || strings.HasPrefix(line, "\t\t") {
			if list != nil {
				*list = append(*list, trimmed)
			}
			continue
		}
		list = nil
		field, value, ok := strings.Cut(trimmed, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		seen[field] = true
		switch field {
		case "Key ID":
			id, err := strconv.Unquote(value)
			if err != nil {
				return c, fmt.Errorf("key ID %s: %w", value, err)
			}
			c.KeyID = id
		case "Serial":
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return c, fmt.Errorf("serial %s: %w", value, err)
			}
			c.Serial = n
		case "Signing CA":
			// ED25519 SHA256:… (using ssh-ed25519)
			f := strings.Fields(value)
			if len(f) < 2 {
				return c, fmt.Errorf("signing CA %q", value)
			}
			c.CA = f[1]
		case "Valid":
			var from, to string
			if _, err := fmt.Sscanf(value, "from %s to %s", &from, &to); err != nil {
				return c, fmt.Errorf("validity %q: want from … to …", value)
			}
			var err error
			if c.From, err = time.Parse("2006-01-02T15:04:05", from); err != nil {
				return c, err
			}
			if c.To, err = time.Parse("2006-01-02T15:04:05", to); err != nil {
				return c, err
			}
		case "Principals":
			if value != "(none)" {
				list = &c.Principals
			}
		}
	}
	for _, f := range []string{"Key ID", "Serial", "Signing CA", "Valid", "Principals"} {
		if !seen[f] {
			return c, fmt.Errorf("no %s", f)
		}
	}
	return c, nil
}

// fingerprints are the SHA256 fingerprints of the keys in an
// authorized_keys-style file, as ssh-keygen -l prints them.
func fingerprints(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-l", "-f", path).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l -f %s: %v", path, err)
	}
	var fps []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			fps = append(fps, f[1])
		}
	}
	if len(fps) == 0 {
		t.Fatalf("no key in %s", path)
	}
	return fps
}

// TestParseCertInfo reads what ssh-keygen -L says of certificates
// ssh-keygen signed. It needs no root.
func TestParseCertInfo(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen is not installed")
	}
	dir := t.TempDir()
	keygen := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("ssh-keygen", args...)
		cmd.Env = append(os.Environ(), "TZ=UTC")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ssh-keygen %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	ca, key := filepath.Join(dir, "ca"), filepath.Join(dir, "key")
	keygen("-q", "-t", "ed25519", "-N", "", "-f", ca)
	keygen("-q", "-t", "ed25519", "-N", "", "-f", key)
	caFP := fingerprints(t, ca+".pub")[0]
	for _, tc := range []struct {
		principals string
		want       []string
	}{
		{"ec2-user", []string{"ec2-user"}},
		{"ec2-user,deploy", []string{"ec2-user", "deploy"}},
	} {
		keygen("-q", "-s", ca, "-I", "alice@example.com", "-z", "42", "-n", tc.principals, "-V", "20261205190000:20261205200500", key+".pub")
		got, err := parseCertInfo(keygen("-L", "-f", key+"-cert.pub"))
		if err != nil {
			t.Fatal(err)
		}
		want := certInfo{
			KeyID: "alice@example.com", Serial: 42, CA: caFP, Principals: tc.want,
			From: time.Date(2026, 12, 5, 19, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 5, 20, 5, 0, 0, time.UTC),
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("-n %s: (-want +got)\n%s", tc.principals, diff)
		}
	}
	if _, err := parseCertInfo("not a certificate\n"); err == nil {
		t.Error("parsing what is not ssh-keygen -L's output: no error")
	}
}
