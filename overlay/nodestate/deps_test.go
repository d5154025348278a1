package nodestate

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces the package doc: nodestate imports nothing
// that belongs to the data plane, the OS, the network or the coordinator.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"golang.zx2c4.com/wireguard",
		"gvisor.dev/gvisor",
		"github.com/vishvananda/netlink",
		"net/http",
		"github.com/warrennet/warren/overlay/coord",
		"github.com/warrennet/warren/overlay/coordclient",
		"github.com/warrennet/warren/platform",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("nodestate depends on %s", dep)
			}
		}
	}
}
