package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// TestDirectPath checks that the laptop and the connector, each behind
// its own NAT (the site's dropping every inbound connection), punch a
// direct path through both, with the relay only carrying the CALLs that
// start it; that ssh and a 64 MiB download work over it; that when the
// home network starts blocking UDP to the site, traffic falls back to the
// relay without a broken session; and that the direct path returns once
// the block is lifted.
func TestDirectPath(t *testing.T) {
	lab := needLab(t)
	lan := startLANServices(t, lab)
	d := deploy(t, lab)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	tok, err := d.admin(ctx, "token", "create", "--role", "client", "--name", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := d.Up(ctx, tok); err != nil {
		t.Fatalf("warren up: %v\n%s", err, out)
	}
	viaDirect := "via office (direct " + netlab.SiteWAN + ":"
	path := func(want string) func() error {
		return func() error {
			// Traffic keeps the peer in use, which discovery needs.
			lab.Run(ctx, netlab.Laptop, "ping", "-c", "1", "-W", "1", netlab.LANHostIP)
			status, err := d.laptop(ctx, "status")
			if err != nil || !strings.Contains(status, want) {
				return fmt.Errorf("want %q in warren status:\n%s\n%v", want, status, err)
			}
			return nil
		}
	}
	eventually(t, 20*time.Second, "a direct path to the connector's NAT", path(viaDirect))

	host, err := lan.ssh(ctx, lab, netlab.Laptop, "hostname")
	if err != nil || strings.TrimSpace(host) == "" {
		t.Fatalf("ssh over the direct path: %q, %v", host, err)
	}
	dst := t.TempDir() + "/big.bin"
	if err := lab.Run(ctx, netlab.Laptop, "curl", "-sf", "--max-time", "120", "-o", dst, "http://"+netlab.LANHostIP+":"+httpPort+"/big.bin"); err != nil {
		t.Fatalf("64 MiB over the direct path: %v", err)
	}
	if got := fileSum(t, dst); got != lan.bigSum {
		t.Fatalf("64 MiB over the direct path: checksum %s, want %s", got, lan.bigSum)
	}
	if status, _ := d.laptop(ctx, "status"); !strings.Contains(status, viaDirect) {
		t.Errorf("the download left the direct path:\n%s", status)
	}

	// The home network blocks UDP to the site's address: the relay (at
	// another address) still works. An ssh session opened before the
	// block runs a command every 200 ms through the change and must
	// not break.
	session := lab.Command(ctx, netlab.Laptop, "ssh", lan.SSHArgs("for i in $(seq 150); do echo tick; sleep 0.2; done")...)
	var out, errOut netlab.SyncBuffer
	session.Stdout, session.Stderr = &out, &errOut
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}
	// The session must be up before the block: a handshake caught by
	// it would hit ssh's ConnectTimeout, which is not what is tested.
	eventually(t, 10*time.Second, "the ssh session's first tick", func() error {
		if !strings.Contains(out.String(), "tick") {
			return fmt.Errorf("no output yet; stderr %q", errOut.String())
		}
		return nil
	})
	block := "table inet warren_block { chain forward { type filter hook forward priority -10; ip daddr " + netlab.SiteWAN + " meta l4proto udp drop; }; }"
	if err := lab.Run(ctx, netlab.HomeGW, "nft", block); err != nil {
		t.Fatalf("blocking direct UDP: %v", err)
	}
	start := time.Now()
	eventually(t, 30*time.Second, "back on the relay once direct UDP is blocked", path("via office (relay)"))
	t.Logf("on the relay %v after the block", time.Since(start).Round(time.Millisecond))
	if _, err := lan.ssh(ctx, lab, netlab.Laptop, "true"); err != nil {
		t.Errorf("a new ssh through the relay: %v", err)
	}

	if err := lab.Run(ctx, netlab.HomeGW, "nft", "delete", "table", "inet", "warren_block"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "direct again once the block is lifted", path(viaDirect))
	if err := session.Wait(); err != nil {
		t.Errorf("the ssh session opened before the block broke: %v; stderr %q", err, errOut.String())
	}
	if n := strings.Count(out.String(), "tick"); n != 150 {
		t.Errorf("the ssh session printed %d ticks of 150", n)
	}
}
