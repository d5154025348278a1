package relay

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps enforces the package doc: relay links in no role, no cmd, no
// OS integration and no gVisor or netlink. Among Warren packages it may
// depend only on overlay/wire (and what wire may import).
func TestDeps(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to list dependencies with")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const warren = "github.com/warrennet/warren/"
	allowed := []string{warren + "overlay/relay", warren + "overlay/wire", warren + "routes"}
	forbidden := []string{"gvisor.dev/gvisor", "github.com/vishvananda/netlink"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("relay depends on %s", dep)
			}
		}
		if strings.HasPrefix(dep, warren) && !hasPathPrefix(dep, allowed) {
			t.Errorf("relay depends on %s; among Warren packages it may use only %v", dep, allowed)
		}
	}
}

func hasPathPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}
