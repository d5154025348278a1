package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrivateDir(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string) // nil: nothing there yet
		wantErr string                          // substring; empty: success
	}{
		{name: "new with parents"},
		{name: "existing 0777 tightened", prepare: mkdirMode(0o777)},
		{name: "existing 0755 tightened", prepare: mkdirMode(0o755)},
		{name: "existing 0700 kept", prepare: mkdirMode(0o700)},
		{name: "sticky world-writable tightened", prepare: mkdirMode(0o777 | os.ModeSticky)},
		{name: "setgid 0700 cleared", prepare: mkdirMode(0o700 | os.ModeSetgid)},
		{name: "regular file refused", prepare: func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a", "b", "data")
			if tt.prepare != nil {
				path = filepath.Join(t.TempDir(), "data")
				tt.prepare(t, path)
			}
			err := PrivateDir(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("PrivateDir = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("PrivateDir: %v", err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (os.ModePerm | os.ModeSticky | os.ModeSetgid | os.ModeSetuid); got != 0o700 {
				t.Errorf("mode = %v, want 0700", got)
			}
		})
	}
	if err := PrivateDir(""); err == nil {
		t.Error(`PrivateDir("") succeeded`)
	}
}

func mkdirMode(mode os.FileMode) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // not subject to the umask
			t.Fatal(err)
		}
	}
}

// TestPrivateDirRefusesAnotherOwner: a directory another user owns is
// refused, and left as it was, even though root could chmod it.
func TestPrivateDirRefusesAnotherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: giving a directory to another user needs root (chown)")
	}
	path := filepath.Join(t.TempDir(), "data")
	mkdirMode(0o777)(t, path)
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	err := PrivateDir(path)
	if !errors.Is(err, ErrNotOwner) {
		t.Fatalf("PrivateDir of a directory owned by uid 65534 = %v, want ErrNotOwner", err)
	}
	want := path + " is owned by another user (uid 65534, this process runs as uid 0): chown it to this user or pick another directory"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o777 {
		t.Errorf("mode after refusal = %v, want 0777 untouched", got)
	}
}
