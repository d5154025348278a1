package coordclient

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces the package doc: coordclient (and its fake)
// import nothing that belongs to the data plane, the OS or the coordinator.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".", "./coordclienttest").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"golang.zx2c4.com/wireguard",
		"gvisor.dev/gvisor",
		"github.com/vishvananda/netlink",
		"github.com/warrennet/warren/overlay/coord",
		"github.com/warrennet/warren/overlay/client",
		"github.com/warrennet/warren/overlay/connector",
		"github.com/warrennet/warren/platform",
		"github.com/warrennet/warren/cmd",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("coordclient depends on %s", dep)
			}
		}
	}
}
