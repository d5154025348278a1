package archtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// resolve turns a rule pattern into an absolute one: "./x" becomes
// modPath/x and "./..." becomes modPath/....
func resolve(modPath, pattern string) string {
	if rest, ok := strings.CutPrefix(pattern, "./"); ok {
		return modPath + "/" + rest
	}
	return pattern
}

// match reports whether the import path matches the absolute pattern: "a/b"
// matches only a/b, "a/b/..." matches a/b and every path below it.
func match(pattern, path string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

func matchAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, path) })
}

// resolved returns r with every pattern made absolute.
func (r rule) resolved(modPath string) rule {
	abs := func(ps []string) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = resolve(modPath, p)
		}
		return out
	}
	r.from, r.except, r.forbid, r.allow = abs(r.from), abs(r.except), abs(r.forbid), abs(r.allow)
	return r
}

// violations checks the resolved rule r against the packages own, given
// graph (import path → imports, for every package in the build). Each
// violation is an import chain from a checked package to a forbidden one.
// A transitive search stops at the first forbidden package on each path,
// so a forbidden module is reported once, where it enters.
func (r rule) violations(own []string, graph map[string][]string) [][]string {
	forbidden := func(p string) bool { return matchAny(r.forbid, p) && !matchAny(r.allow, p) }
	var out [][]string
	for _, p := range own {
		if !matchAny(r.from, p) || matchAny(r.except, p) {
			continue
		}
		if r.how == direct {
			for _, imp := range graph[p] {
				if forbidden(imp) {
					out = append(out, []string{p, imp})
				}
			}
			continue
		}
		parent := map[string]string{p: ""}
		queue := []string{p}
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			for _, imp := range graph[cur] {
				if _, seen := parent[imp]; seen {
					continue
				}
				parent[imp] = cur
				if forbidden(imp) {
					out = append(out, chainTo(imp, parent))
					continue
				}
				queue = append(queue, imp)
			}
		}
	}
	return out
}

// chainTo follows parent links back from p to the root of the search.
func chainTo(p string, parent map[string]string) []string {
	var chain []string
	for ; p != ""; p = parent[p] {
		chain = append(chain, p)
	}
	slices.Reverse(chain)
	return chain
}

func TestDependencyRules(t *testing.T) {
	m := loadModule(t)
	graph := make(map[string][]string, len(m.pkgs))
	for path, p := range m.pkgs {
		graph[path] = p.Imports
	}
	for _, r := range rules {
		verb := "import"
		if r.how == transitive {
			verb = "depend on"
		}
		for _, chain := range r.resolved(m.path).violations(m.own, graph) {
			short := make([]string, len(chain))
			for i, p := range chain {
				short[i] = m.short(p)
			}
			msg := fmt.Sprintf("%s must not %s %s: %s", short[0], verb, short[len(short)-1], r.why)
			if len(short) > 2 {
				msg += "\n\timport chain: " + strings.Join(short, " → ")
			}
			t.Error(msg)
		}
	}
}

// TestRulePatterns keeps the table honest: every pattern names something
// that exists (a Warren package, a standard package, a module go.mod
// requires) or, for a Warren pattern, is listed in future.
func TestRulePatterns(t *testing.T) {
	m := loadModule(t)
	known := func(pattern string) error {
		abs := resolve(m.path, pattern)
		switch {
		case abs == m.path || strings.HasPrefix(abs, m.path+"/"):
			if slices.ContainsFunc(m.own, func(p string) bool { return match(abs, p) }) {
				return nil
			}
			if _, ok := future[pattern]; ok {
				return nil
			}
			return fmt.Errorf("Warren pattern %q matches no package; fix it, or list it in future if its package is not written yet", pattern)
		case !strings.Contains(strings.Split(abs, "/")[0], "."):
			if slices.ContainsFunc(m.std, func(p string) bool { return match(abs, p) }) {
				return nil
			}
			return fmt.Errorf("pattern %q matches no standard library package", pattern)
		default:
			base := strings.TrimSuffix(abs, "/...")
			for _, req := range m.reqs {
				if match(abs, req) || strings.HasPrefix(base, req+"/") {
					return nil
				}
			}
			return fmt.Errorf("pattern %q is in no module go.mod requires", pattern)
		}
	}
	for i, r := range rules {
		if len(r.from) == 0 || len(r.forbid) == 0 || r.why == "" || (r.how != direct && r.how != transitive) {
			t.Errorf("rule %d is incomplete: it needs from, forbid, how and why", i)
		}
		for _, list := range [][]string{r.from, r.except, r.forbid, r.allow} {
			for _, p := range list {
				if err := known(p); err != nil {
					t.Errorf("rule %d (%s): %v", i, r.why, err)
				}
			}
		}
	}
	for pattern := range future {
		abs := resolve(m.path, pattern)
		if i := slices.IndexFunc(m.own, func(p string) bool { return match(abs, p) }); i >= 0 {
			t.Logf("future pattern %q now matches %s; it can leave the future list", pattern, m.short(m.own[i]))
		}
	}
}

func TestMatch(t *testing.T) {
	const mod = "example.com/w"
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"./routes/...", mod + "/routes", true},
		{"./routes/...", mod + "/routes/routestest", true},
		{"./routes/...", mod + "/routesx", false},
		{"./routes/...", mod + "/overlay/routes", false},
		{"./routes", mod + "/routes", true},
		{"./routes", mod + "/routes/routestest", false},
		{"./...", mod, true},
		{"./...", mod + "/cmd/warren/cli", true},
		{"./...", "example.com/wx", false},
		{"./...", "fmt", false},
		{"./overlay/coord/...", mod + "/overlay/coordclient", false},
		{"./overlay/coord/...", mod + "/overlay/coord/api", true},
		{"os", "os", true},
		{"os", "os/exec", false},
		{"os/...", "os/exec", true},
		{"net", "net/netip", false},
		{"net/http/...", "net/http/httptest", true},
		{"net/http/...", "net/httpx", false},
		{"gvisor.dev/gvisor/...", "gvisor.dev/gvisor/pkg/tcpip/stack", true},
		{"github.com/vishvananda/netlink/...", "github.com/vishvananda/netns", false},
	}
	for _, tt := range tests {
		if got := match(resolve(mod, tt.pattern), tt.path); got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}

// TestViolations runs the checker on small made-up graphs.
func TestViolations(t *testing.T) {
	const mod = "example.com/w"
	w := func(p string) string { return mod + "/" + p }
	graph := map[string][]string{
		w("cmd/warren/cli"):               {"fmt", w("overlay/coordclient")},
		w("overlay/coordclient"):          {"golang.zx2c4.com/wireguard/conn", "net/http", w("overlay/wire")},
		w("overlay/wire"):                 {w("routes")},
		w("routes"):                       {"net/netip"},
		w("split"):                        {"os", w("routes")},
		w("overlay/coord"):                {w("overlay/coord/store")},
		w("overlay/coord/api"):            {w("overlay/coord"), w("overlay/coord/store")},
		w("overlay/coord/store"):          {w("overlay/wire"), w("routes")},
		w("overlay/bad"):                  {w("routes/leaky")},
		w("routes/leaky"):                 {w("overlay/coord")},
		"golang.zx2c4.com/wireguard/conn": {"golang.zx2c4.com/wireguard/tun"},
	}
	own := make([]string, 0, len(graph))
	for p := range graph {
		if strings.HasPrefix(p, mod+"/") {
			own = append(own, p)
		}
	}
	slices.Sort(own)

	tests := []struct {
		name string
		rule rule
		want [][]string
	}{
		{
			name: "transitive chain stops where the forbidden module enters",
			rule: rule{from: []string{"./cmd/warren/cli/..."}, forbid: dataPlane, how: transitive},
			want: [][]string{{w("cmd/warren/cli"), w("overlay/coordclient"), "golang.zx2c4.com/wireguard/conn"}},
		},
		{
			name: "direct ignores what imports import",
			rule: rule{from: []string{"./cmd/warren/cli/..."}, forbid: dataPlane, how: direct},
		},
		{
			name: "direct standard package",
			rule: rule{from: pure, forbid: effects, how: direct},
			want: [][]string{{w("split"), "os"}},
		},
		{
			name: "allow",
			rule: rule{from: []string{"./overlay/coord/store/..."}, forbid: []string{"./..."}, allow: []string{"./overlay/coord/store/...", "./overlay/wire/..."}, how: direct},
			want: [][]string{{w("overlay/coord/store"), w("routes")}},
		},
		{
			name: "except",
			rule: rule{from: []string{"./overlay/coord/..."}, except: []string{"./overlay/coord/api/..."}, forbid: []string{"./overlay/coord/store/..."}, how: direct},
			want: [][]string{{w("overlay/coord"), w("overlay/coord/store")}},
		},
		{
			name: "search goes on through allowed packages",
			rule: rule{from: []string{"./overlay/bad"}, forbid: []string{"./overlay/coord/..."}, allow: []string{"./routes/..."}, how: transitive},
			want: [][]string{{w("overlay/bad"), w("routes/leaky"), w("overlay/coord")}},
		},
		{
			name: "no match, no violation",
			rule: rule{from: []string{"./platform/..."}, forbid: []string{"./..."}, how: transitive},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.rule.resolved(mod).violations(own, graph)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}
