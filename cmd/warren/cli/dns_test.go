package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func TestDNSCommands(t *testing.T) {
	tc := newTestCoordinator(t)
	tc.enroll(t, wire.RoleConnector, "office", 1)
	for _, args := range []string{
		"routes add 192.168.0.0/24 --connector office",
		"routes add 2001:db8:1::/48 --connector office",
	} {
		if _, _, err := run(t, tc.admin, strings.Fields(args)...); err != nil {
			t.Fatalf("%s: %v", args, err)
		}
	}
	out, _, err := run(t, tc.admin, "dns", "ls")
	if err != nil || out != "no dns domains; add one with: warren dns add DOMAIN --server IP\n" {
		t.Errorf("dns ls, none: %q, %v", out, err)
	}
	for _, tt := range []struct{ args, want string }{
		{"dns add Corp.Example. --server 192.168.0.53", "dns corp.example → 192.168.0.53\n"},
		{"dns add lab.example --server 2001:db8:1::53 --server 192.168.0.54", "dns lab.example → 2001:db8:1::53, 192.168.0.54\n"},
		// Adding again replaces the servers.
		{"dns add corp.example --server 192.168.0.54 --server 192.168.0.53", "dns corp.example → 192.168.0.54, 192.168.0.53\n"},
	} {
		out, _, err := run(t, tc.admin, strings.Fields(tt.args)...)
		if err != nil || out != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.args, out, err, tt.want)
		}
	}
	out, _, err = run(t, tc.admin, "dns", "ls")
	if err != nil {
		t.Fatal(err)
	}
	want := "DOMAIN        SERVERS\n" +
		"corp.example  192.168.0.54, 192.168.0.53\n" +
		"lab.example   2001:db8:1::53, 192.168.0.54\n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("dns ls (-want +got):\n%s", diff)
	}
	out, _, err = run(t, tc.admin, "dns", "ls", "--json")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "dns-ls.json")
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(golden), out); diff != "" {
		t.Errorf("dns ls --json (-golden +got):\n%s", diff)
	}

	before := tc.co.Export()
	for _, tt := range []struct{ args, want string }{
		{"dns add", "usage: warren dns add DOMAIN --server IP [--server IP]..."},
		{"dns add corp.example", "usage: warren dns add DOMAIN --server IP [--server IP]..."},
		{"dns add a b --server 192.168.0.53", "usage: warren dns add DOMAIN --server IP [--server IP]..."},
		{"dns add my_corp.example --server 192.168.0.53", `domain name "my_corp.example" may hold only letters, digits and inner hyphens in each label`},
		{"dns add warren.internal --server 192.168.0.53", `warren.internal is under the host suffix warren.internal, whose names are the named hosts (warren hosts add NAME IP)`},
		{"dns add corp.example --server 10.9.0.53", `dns server 10.9.0.53 is not inside any routed prefix: its queries would not reach a connector (warren routes add PREFIX --connector NAME)`},
		{"dns add corp.example --server nope", `dns server "nope" is not an IP address (for example 192.168.0.53)`},
		{"dns add corp.example --server 192.168.0.1 --server 192.168.0.2 --server 192.168.0.3 --server 192.168.0.4 --server 192.168.0.5 --server 192.168.0.6 --server 192.168.0.7 --server 192.168.0.8 --server 192.168.0.9",
			`9 dns servers given; at most 8`},
		{"routes rm 192.168.0.0/24", `dns server 192.168.0.54 of corp.example is inside no other route: its queries would reach no connector; remove the domain first (warren dns rm corp.example) or give it other servers (warren dns add corp.example --server IP)`},
		{"dns rm ghost.example", `no dns domain ghost.example (see: warren dns ls)`},
		{"dns rm", "usage: warren dns rm DOMAIN"},
	} {
		_, _, err := run(t, tc.admin, strings.Fields(tt.args)...)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: error %v, want %s", tt.args, err, tt.want)
		}
		if ExitStatus(err) != 1 {
			t.Errorf("%s: exit status %d, want 1", tt.args, ExitStatus(err))
		}
	}
	if diff := cmp.Diff(before, tc.co.Export(), netipEqual); diff != "" {
		t.Errorf("refused commands changed state (-before +after):\n%s", diff)
	}

	out, _, err = run(t, tc.admin, "dns", "rm", "LAB.example.")
	if err != nil || out != "dns lab.example removed\n" {
		t.Errorf("dns rm lab.example: %q, %v", out, err)
	}
	if ds := tc.co.DNS(); len(ds) != 1 || ds[0].Domain != "corp.example" {
		t.Errorf("dns after rm: %+v", ds)
	}
}
