package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// unreachable asserts that the laptop reaches nothing on lanhost.
func (s *lanServices) unreachable(t *testing.T, lab *netlab.Lab, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lab.Run(ctx, netlab.Laptop, "curl", "-sf", "--max-time", "2", "http://"+netlab.LANHostIP+":"+httpPort+"/"); err == nil {
		t.Errorf("%s: curl from the laptop reached lanhost", when)
	}
	if out, err := s.ssh(ctx, lab, netlab.Laptop, "true"); err == nil {
		t.Errorf("%s: ssh from the laptop reached lanhost: %q", when, out)
	}
	if err := lab.Run(ctx, netlab.Laptop, "ping", "-c", "1", "-W", "1", netlab.LANHostIP); err == nil {
		t.Errorf("%s: ping from the laptop reached lanhost", when)
	}
}

// TestLANServicesBaseline checks the test bed: the real servers answer on
// the site LAN, and the laptop cannot reach them without Warren.
func TestLANServicesBaseline(t *testing.T) {
	lab := needLab(t)
	s := startLANServices(t, lab)
	ctx := context.Background()
	out, err := s.ssh(ctx, lab, netlab.Conn, "ip", "-o", "-4", "addr", "show", "eth0")
	if err != nil || !strings.Contains(out, netlab.LANHostIP) {
		t.Errorf("ssh from the connector's LAN: %q, %v", out, err)
	}
	out, err = lab.Output(ctx, netlab.Conn, "dig", "+short", "@"+netlab.LANHostIP, lanName)
	if err != nil || strings.TrimSpace(out) != netlab.LANHostIP {
		t.Errorf("dig %s: %q, %v", lanName, out, err)
	}
	s.unreachable(t, lab, "without warren")
}
