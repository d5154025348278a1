package nodestate_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/warrennet/warren/overlay/atomicfile"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/wire"
)

var cmpNet = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func open(t *testing.T) *nodestate.Dir {
	t.Helper()
	d, err := nodestate.Open(filepath.Join(t.TempDir(), "var", "lib", "warren"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func testIdentity(t *testing.T) *nodestate.Identity {
	t.Helper()
	k, err := nodestate.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &nodestate.Identity{
		PrivateKey: k,
		Node: wire.Node{
			ID: "n1", Name: "laptop", Role: wire.RoleClient,
			PublicKey: k.PublicKey(), Address: netip.MustParseAddr("100.96.0.2"),
		},
		Credential: "cred-0123456789abcdef",
		URL:        "https://198.51.100.10:8443",
		Pin:        strings.Repeat("ab", 32),
	}
}

func testNetMap() *wire.NetMap {
	pk := wire.Key{1, 2, 3}
	return &wire.NetMap{
		Version: 42,
		Self:    wire.Node{ID: "n1", Name: "laptop", Role: wire.RoleClient, PublicKey: pk, Address: netip.MustParseAddr("100.96.0.2")},
		Peers: []wire.Peer{{
			Node:     wire.Node{ID: "n2", Name: "office", Role: wire.RoleConnector, PublicKey: wire.Key{9}, Address: netip.MustParseAddr("100.96.0.1")},
			Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")},
			Online:   true,
		}},
		Routes: []wire.Route{{Prefix: netip.MustParsePrefix("192.168.0.0/24"), Connector: "office", CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}},
		Relay:  wire.Relay{Endpoint: "198.51.100.10:3478", Credential: "relay-secret"},
		Split: wire.SplitPolicy{
			Mode:    wire.SplitExclude,
			Include: []wire.SplitEntry{},
			Exclude: []wire.SplitEntry{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Builtin: true}},
		},
	}
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestOpen(t *testing.T) {
	d := open(t)
	if got := mode(t, d.Path()); got != 0o700 {
		t.Errorf("new directory mode %o, want 700", got)
	}

	// An existing directory that is too open is tightened.
	loose := filepath.Join(t.TempDir(), "loose")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := nodestate.Open(loose); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, loose); got != 0o700 {
		t.Errorf("existing directory mode %o, want 700", got)
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := nodestate.Open(file); err == nil {
		t.Error("Open of a regular file succeeded")
	}
	if _, err := nodestate.Open(""); err == nil {
		t.Error(`Open("") succeeded`)
	}
}

// TestOpenRefusesAnotherOwner: a state directory another user owns could
// have its key replaced by that user at any time; Open refuses it and
// leaves it as it was.
func TestOpenRefusesAnotherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: giving a directory to another user needs root (chown)")
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := nodestate.Open(dir)
	if !errors.Is(err, atomicfile.ErrNotOwner) {
		t.Fatalf("Open of a directory owned by uid 65534 = %v, want atomicfile.ErrNotOwner", err)
	}
	if got := mode(t, dir); got != 0o777 {
		t.Errorf("mode after refusal = %o, want 777 untouched", got)
	}
}

func TestNothingSavedYet(t *testing.T) {
	d := open(t)
	if _, err := d.LoadIdentity(); !errors.Is(err, nodestate.ErrNoIdentity) {
		t.Errorf("LoadIdentity on a new directory = %v, want ErrNoIdentity", err)
	}
	if _, err := d.LoadNetMap(); !errors.Is(err, nodestate.ErrNoNetMap) {
		t.Errorf("LoadNetMap on a new directory = %v, want ErrNoNetMap", err)
	}
}

func TestIdentityRoundTrip(t *testing.T) {
	d := open(t)
	want := testIdentity(t)
	if err := d.SaveIdentity(want); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, filepath.Join(d.Path(), "identity.json")); got != 0o600 {
		t.Errorf("identity file mode %o, want 600", got)
	}
	got, err := d.LoadIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpNet); diff != "" {
		t.Errorf("identity mismatch (-saved +loaded):\n%s", diff)
	}

	// Saving again replaces it.
	want.Credential = "rotated-credential"
	if err := d.SaveIdentity(want); err != nil {
		t.Fatal(err)
	}
	got, err = d.LoadIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if got.Credential != "rotated-credential" {
		t.Errorf("credential after second save = %q", got.Credential)
	}

	// A reopened directory sees the same identity.
	d2, err := nodestate.Open(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d2.LoadIdentity(); err != nil || got.Credential != want.Credential {
		t.Errorf("after reopening: %+v, %v", got, err)
	}
}

func TestSaveIdentityValidates(t *testing.T) {
	d := open(t)
	for name, mutate := range map[string]func(*nodestate.Identity){
		"no private key":  func(id *nodestate.Identity) { id.PrivateKey = wire.Key{} },
		"key mismatch":    func(id *nodestate.Identity) { id.Node.PublicKey = wire.Key{7} },
		"no credential":   func(id *nodestate.Identity) { id.Credential = "" },
		"bad url":         func(id *nodestate.Identity) { id.URL = "198.51.100.10:8443" },
		"bad pin":         func(id *nodestate.Identity) { id.Pin = "abc" },
		"pin not hex":     func(id *nodestate.Identity) { id.Pin = strings.Repeat("zz", 32) },
		"url with a path": func(id *nodestate.Identity) { id.URL = "https://c.example/x" },
	} {
		id := testIdentity(t)
		mutate(id)
		if err := d.SaveIdentity(id); err == nil {
			t.Errorf("%s: SaveIdentity succeeded", name)
		}
	}
	if err := d.SaveIdentity(nil); err == nil {
		t.Error("SaveIdentity(nil) succeeded")
	}
	if _, err := d.LoadIdentity(); !errors.Is(err, nodestate.ErrNoIdentity) {
		t.Errorf("a rejected identity was written: LoadIdentity = %v", err)
	}
}

func TestNetMapRoundTrip(t *testing.T) {
	d := open(t)
	want := testNetMap()
	if err := d.SaveNetMap(want); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, filepath.Join(d.Path(), "netmap.json")); got != 0o600 {
		t.Errorf("netmap file mode %o, want 600", got)
	}
	got, err := d.LoadNetMap()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpNet); diff != "" {
		t.Errorf("netmap mismatch (-saved +loaded):\n%s", diff)
	}
	if err := d.SaveNetMap(nil); err == nil {
		t.Error("SaveNetMap(nil) succeeded")
	}
}

func TestStrictDecoding(t *testing.T) {
	idJSON := func(t *testing.T, d *nodestate.Dir) string {
		if err := d.SaveIdentity(testIdentity(t)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(d.Path(), "identity.json"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name string
		edit func(string) string
		want string
	}{
		{"unknown top-level field", func(s string) string { return strings.Replace(s, "{", `{"extra": 1,`, 1) }, `unknown field "extra"`},
		{"unknown nested field", func(s string) string { return strings.Replace(s, `"node": {`, `"node": {"colour": "red",`, 1) }, `unknown field "colour"`},
		{"trailing data", func(s string) string { return s + "{}" }, "unexpected data after the JSON object"},
		{"truncated", func(s string) string { return s[:len(s)/2] }, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := open(t)
			content := tc.edit(idJSON(t, d))
			if err := os.WriteFile(filepath.Join(d.Path(), "identity.json"), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := d.LoadIdentity()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadIdentity = %v, want an error containing %q", err, tc.want)
			}
			if errors.Is(err, nodestate.ErrNoIdentity) {
				t.Errorf("a corrupt identity reads as ErrNoIdentity")
			}
		})
	}

	t.Run("netmap unknown field", func(t *testing.T) {
		d := open(t)
		if err := os.WriteFile(filepath.Join(d.Path(), "netmap.json"), []byte(`{"version": 3, "peers": [{"name": "x", "mtu": 1280}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := d.LoadNetMap(); err == nil || !strings.Contains(err.Error(), `unknown field "mtu"`) {
			t.Errorf("LoadNetMap = %v, want an unknown field error", err)
		}
	})
}

func TestLoadIdentityChecksConsistency(t *testing.T) {
	d := open(t)
	id := testIdentity(t)
	if err := d.SaveIdentity(id); err != nil {
		t.Fatal(err)
	}
	// Swap in another private key by hand.
	p := filepath.Join(d.Path(), "identity.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	other, err := nodestate.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), id.PrivateKey.String(), other.String(), 1))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.LoadIdentity(); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("LoadIdentity with a swapped key = %v, want a mismatch error", err)
	}
}

func TestNewPrivateKey(t *testing.T) {
	seen := map[wire.Key]bool{}
	for range 64 {
		k, err := nodestate.NewPrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
			t.Fatalf("key %x is not clamped", k)
		}
		if seen[k] {
			t.Fatalf("key %v generated twice", k)
		}
		seen[k] = true
		if pub := k.PublicKey(); pub.IsZero() || pub == k {
			t.Fatalf("public key of %v is %v", k, pub)
		}
	}
}
