package client

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestWriteUserFile: the daemon (root) writes a certificate for a user
// only into a real directory of theirs, as theirs, and never through a
// symbolic link.
func TestWriteUserFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: writes files as another uid (sudo go test -run TestWriteUserFile ./overlay/client)")
	}
	const uid, gid, other = 65534, 65534, 65533
	base := t.TempDir()
	mkdir := func(name string, owner int, mode os.FileMode) string {
		t.Helper()
		d := filepath.Join(base, name)
		if err := os.Mkdir(d, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, owner, owner); err != nil {
			t.Fatal(err)
		}
		return d
	}
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("root's file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mine := mkdir("mine", uid, 0o700)
	if err := os.Symlink(mine, filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	theirs := mkdir("theirs", other, 0o700)
	open := mkdir("open", uid, 0o777)
	planted := mkdir("planted", uid, 0o700)
	if err := os.Symlink(victim, filepath.Join(planted, "id-cert.pub")); err != nil {
		t.Fatal(err)
	}
	replaced := mkdir("replaced", uid, 0o700)
	if err := os.WriteFile(filepath.Join(replaced, "id-cert.pub"), []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	mineHasCert := func() bool {
		_, err := os.Lstat(filepath.Join(mine, "id-cert.pub"))
		return err == nil
	}
	tests := []struct {
		name, dir string
		err       string
	}{
		{"symlinked directory", filepath.Join(base, "link"), "is a symbolic link"},
		{"own directory", mine, ""},
		{"replaces the old certificate", replaced, ""},
		{"a symbolic link at the target is replaced, not followed", planted, ""},
		{"another user's directory", theirs, "belongs to uid 65533, not to the caller (uid 65534)"},
		{"directory writable by others", open, "is writable by other users"},
		{"missing directory", filepath.Join(base, "none"), "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := writeUserFile(tt.dir, "id-cert.pub", uid, gid, []byte("cert\n"))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one saying %q", err, tt.err)
				}
				// The link case runs first: nothing may have reached mine.
				if _, err := os.Lstat(filepath.Join(tt.dir, "id-cert.pub")); err == nil || tt.dir == filepath.Join(base, "link") && mineHasCert() {
					t.Errorf("a refused write left a certificate")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(tt.dir, "id-cert.pub")
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 || st.Uid != uid || st.Gid != gid {
				t.Errorf("%s: mode %v, owner %d:%d; want a regular file 0644 owned by %d:%d", p, fi.Mode(), st.Uid, st.Gid, uid, gid)
			}
			if b, _ := os.ReadFile(p); string(b) != "cert\n" {
				t.Errorf("%s holds %q", p, b)
			}
			if m, _ := filepath.Glob(filepath.Join(tt.dir, ".*tmp-*")); len(m) > 0 {
				t.Errorf("temporary files left: %v", m)
			}
		})
	}
	if b, _ := os.ReadFile(victim); string(b) != "root's file\n" {
		t.Errorf("the file a planted link pointed at now holds %q", b)
	}
	if fi, _ := os.Stat(victim); fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Error("the file a planted link pointed at changed hands")
	}
}
