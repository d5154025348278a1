package nodestate

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
)

func saved(t *testing.T) (*Dir, *Identity) {
	t.Helper()
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	id := &Identity{
		PrivateKey: k,
		Node:       wire.Node{Name: "laptop", Role: wire.RoleClient, PublicKey: k.PublicKey(), Address: netip.MustParseAddr("100.96.0.2")},
		Credential: "first-credential",
		URL:        "https://198.51.100.10:8443",
	}
	if err := d.SaveIdentity(id); err != nil {
		t.Fatal(err)
	}
	return d, id
}

func temps(t *testing.T, d *Dir) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(d.path, ".*.tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func checkFirst(t *testing.T, d *Dir) {
	t.Helper()
	got, err := d.LoadIdentity()
	if err != nil {
		t.Fatalf("previous identity unreadable: %v", err)
	}
	if got.Credential != "first-credential" {
		t.Fatalf("credential = %q, want the previous one", got.Credential)
	}
}

func TestCrashLeavesTempFile(t *testing.T) {
	// A crash after writing part of the temporary file and before the
	// rename leaves the temporary file behind; the real file is intact.
	d, _ := saved(t)
	leftover := filepath.Join(d.path, "."+identityFile+".tmp-123456")
	if err := os.WriteFile(leftover, []byte(`{"private_key": "AAA`), 0o600); err != nil {
		t.Fatal(err)
	}
	checkFirst(t, d)

	// Reopening after the "restart" cleans up; saving still works.
	d, err := Open(d.path)
	if err != nil {
		t.Fatal(err)
	}
	if m := temps(t, d); len(m) != 0 {
		t.Errorf("temporary files left after Open: %v", m)
	}
	checkFirst(t, d)
}

func TestFailedWriteKeepsOldFile(t *testing.T) {
	d, _ := saved(t)
	errDisk := errors.New("disk full")
	err := d.write(identityFile, func(w io.Writer) error {
		if _, err := io.WriteString(w, `{"private_key": "half`); err != nil {
			return err
		}
		return errDisk
	})
	if !errors.Is(err, errDisk) {
		t.Fatalf("write = %v, want the write error", err)
	}
	checkFirst(t, d)
	if m := temps(t, d); len(m) != 0 {
		t.Errorf("temporary files left after a failed write: %v", m)
	}
}

func TestFailedRenameKeepsOldFile(t *testing.T) {
	d, _ := saved(t)
	// A directory in the way of the rename target makes the rename fail
	// after the temporary file is fully written and synced.
	target := "blocked.json"
	if err := os.MkdirAll(filepath.Join(d.path, target, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := d.write(target, func(w io.Writer) error {
		_, err := io.WriteString(w, "{}")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "saving blocked.json") {
		t.Fatalf("write = %v, want a rename error", err)
	}
	if m := temps(t, d); len(m) != 0 {
		t.Errorf("temporary files left after a failed rename: %v", m)
	}
	checkFirst(t, d)
}
