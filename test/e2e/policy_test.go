package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// engPolicy lets group eng (alice) reach ssh on the site LAN and
// production-server's 443, and nothing else; its tests say so.
const engPolicy = `{
	// Who may reach what: everything else is denied.
	"groups": {"eng": ["alice@example.com"]},
	"rules": [
		{"from": ["group:eng"], "to": ["192.168.0.0/24:22", "production-server:443"]},
	],
	"tests": [
		{"user": "alice@example.com", "allow": ["192.168.0.10:22"], "deny": ["192.168.0.10:8080", "192.168.0.10:53/udp"]},
	],
}`

// brokenPolicy's test expects what its rules do not allow.
const brokenPolicy = `{
	"groups": {"eng": ["alice@example.com"]},
	"rules": [{"from": ["group:eng"], "to": ["192.168.0.0/24:22"]}],
	"tests": [{"user": "alice@example.com", "allow": ["192.168.0.10:8080"]}],
}`

// noSSHPolicy takes port 22 away from alice.
const noSSHPolicy = `{
	"groups": {"eng": ["alice@example.com"]},
	"rules": [{"from": ["group:eng"], "to": ["production-server:443"]}],
}`

// TestAccessPolicy drives the access policy end to end with real
// programs: alice's ssh passes and her curl to another port is refused at
// once, a UDP query is refused with ICMP, a policy whose tests fail
// changes nothing, a live ssh session is cut when its port is taken away,
// and the laptop, the admin and the flow log all say why.
func TestAccessPolicy(t *testing.T) {
	lab := needLab(t)
	lan := startLANServices(t, lab)
	d := deploy(t, lab)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	admin := func(args ...string) string {
		t.Helper()
		out, err := d.admin(ctx, args...)
		if err != nil {
			t.Fatalf("warren %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	tok := admin("token", "create", "--role", "client", "--name", "alice-laptop", "--user", "alice@example.com")
	if out, err := d.Up(ctx, tok); err != nil {
		t.Fatalf("warren up: %v\n%s", err, out)
	}
	if out := admin("nodes", "ls"); !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "allow-all") {
		t.Errorf("nodes ls shows neither alice nor the allow-all mode:\n%s", out)
	}
	curl := func(port string) error {
		return lab.Run(ctx, netlab.Laptop, "curl", "-sf", "--max-time", "5", "http://"+netlab.LANHostIP+":"+port+"/")
	}
	// With no document, everything routed is reachable, as before policies.
	eventually(t, 10*time.Second, "curl under allow-all", func() error { return curl(httpPort) })

	admin("hosts", "add", "production-server", netlab.LANHostIP, "--comment", "the site's web server")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// A document whose own test fails is refused, naming the test, and
	// the old (allow-all) behaviour stays.
	out, err := d.admin(ctx, "policy", "set", write("broken.json", brokenPolicy))
	if err == nil || !strings.Contains(err.Error(), "192.168.0.10:8080") || !strings.Contains(err.Error(), "nothing changed") {
		t.Errorf("policy set of a failing test: err %v, output %q; want a refusal naming the test", err, out)
	}
	if err := curl(httpPort); err != nil {
		t.Errorf("a refused policy changed what applies: curl %v", err)
	}

	// The dry run says what alice would lose, and changes nothing.
	if out := admin("policy", "set", "--dry-run", write("eng.json", engPolicy)); !strings.Contains(out, "alice@example.com") {
		t.Errorf("dry run does not name alice:\n%s", out)
	}
	if err := curl(httpPort); err != nil {
		t.Errorf("a dry run changed what applies: curl %v", err)
	}
	admin("policy", "set", filepath.Join(dir, "eng.json"))
	if got := admin("policy", "get"); !strings.Contains(got, "// Who may reach what") {
		t.Errorf("policy get does not give the document back as set:\n%s", got)
	}

	// Port 8080 is refused at once (a RST, not a time-out); ssh passes.
	eventually(t, 3*time.Second, "curl refused", func() error {
		start := time.Now()
		err := curl(httpPort)
		var ee *exec.ExitError
		switch {
		case err == nil:
			return errors.New("curl to 8080 succeeded")
		case !errors.As(err, &ee) || ee.ExitCode() != 7:
			return fmt.Errorf("curl failed other than with a refused connection: %v", err)
		case time.Since(start) > time.Second:
			return fmt.Errorf("refusal took %v, want under 1 s", time.Since(start))
		}
		return nil
	})
	if out, err := lan.ssh(ctx, lab, netlab.Laptop, "echo", "policy-ok"); err != nil || !strings.Contains(out, "policy-ok") {
		t.Fatalf("alice's ssh under the policy: %v\n%s", err, out)
	}

	// A UDP query is refused with ICMP administratively prohibited, which
	// dig reports at once rather than timing out.
	start := time.Now()
	digOut, err := lab.Output(ctx, netlab.Laptop, "dig", "+time=5", "+tries=1", "@"+netlab.LANHostIP, lanName)
	if err == nil && strings.Contains(digOut, "ANSWER SECTION") {
		t.Errorf("a denied UDP query was answered:\n%s", digOut)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a denied UDP query took %v to fail, want an ICMP refusal well before dig's 5 s time-out\n%s", took, digOut)
	}

	// The laptop explains both decisions, and shows the connector's denial.
	why, err := d.laptop(ctx, "why", netlab.LANHostIP+":"+httpPort)
	if err != nil || !strings.Contains(why, "denied by policy") || !strings.Contains(why, "alice@example.com") {
		t.Errorf("warren why %s:%s: %v\n%s", netlab.LANHostIP, httpPort, err, why)
	}
	why, err = d.laptop(ctx, "why", netlab.LANHostIP+":22")
	if err != nil || !strings.Contains(why, "allowed by rule 1") {
		t.Errorf("warren why %s:22: %v\n%s", netlab.LANHostIP, err, why)
	}
	eventually(t, 5*time.Second, "denial in warren status", func() error {
		st, err := d.laptop(ctx, "status")
		if err != nil {
			return err
		}
		if !strings.Contains(st, netlab.LANHostIP+":"+httpPort) {
			return fmt.Errorf("status lacks the denial:\n%s", st)
		}
		return nil
	})

	// The admin asks the same questions; the exit status is the answer.
	if out, err := d.admin(ctx, "policy", "why", "alice@example.com", netlab.LANHostIP+":22"); err != nil || !strings.Contains(out, "allow") {
		t.Errorf("policy why :22: %v\n%s", err, out)
	}
	out, err = d.admin(ctx, "policy", "why", "alice@example.com", netlab.LANHostIP+":8080")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out+err.Error(), "denied") {
		t.Errorf("policy why :8080: want exit 1 and a denial, got %v\n%s", err, out)
	}

	// A live ssh session is cut within 2 s of the policy taking port 22 away.
	session, err := lab.Start(netlab.Laptop, "ssh", lan.SSHArgs("for i in $(seq 1 600); do echo tick $i; sleep 0.1; done")...)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Kill()
	eventually(t, 10*time.Second, "ssh session ticking", func() error {
		if !strings.Contains(session.Output(), "tick 5") {
			return fmt.Errorf("output %q", session.Output())
		}
		return nil
	})
	admin("policy", "set", write("nossh.json", noSSHPolicy))
	cut := time.Now()
	eventually(t, 2*time.Second, "ssh session cut", func() error {
		if exited, _ := session.Exited(); !exited {
			return fmt.Errorf("still running %v after the policy change", time.Since(cut))
		}
		return nil
	})
	if strings.Contains(session.Output(), "tick 600") {
		t.Errorf("the session ran to its end instead of being cut")
	}

	// The flow log holds alice's ssh flow with its bytes, and the denials.
	eventually(t, 10*time.Second, "ssh flow in the flow log", func() error {
		out, err := d.admin(ctx, "flows", "--user", "alice@example.com", "--json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		var recs []struct {
			User, Node, Decision string
			Dst                  string
			BytesUp              uint64 `json:"bytes_up"`
			BytesDown            uint64 `json:"bytes_down"`
		}
		if err := json.Unmarshal([]byte(out), &recs); err != nil {
			return fmt.Errorf("decoding flows: %v\n%s", err, out)
		}
		var ssh, denied bool
		for _, r := range recs {
			if r.User != "alice@example.com" || r.Node != "alice-laptop" {
				return fmt.Errorf("a record of someone else: %+v", r)
			}
			if r.Dst == netlab.LANHostIP+":22" && r.Decision == "allow" && r.BytesUp > 0 && r.BytesDown > 0 {
				ssh = true
			}
			if r.Dst == netlab.LANHostIP+":"+httpPort && r.Decision == "deny" {
				denied = true
			}
		}
		if !ssh || !denied {
			return fmt.Errorf("ssh flow with bytes %v, 8080 denial %v in %d records", ssh, denied, len(recs))
		}
		return nil
	})
	if out := admin("flows", "--denied"); strings.Contains(out, netlab.LANHostIP+":22 ") {
		t.Errorf("flows --denied lists an allowed ssh flow:\n%s", out)
	}

	// Back to allow-all: everything passes again.
	admin("policy", "reset")
	eventually(t, 3*time.Second, "curl after reset", func() error { return curl(httpPort) })
}
