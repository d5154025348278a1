package atomicfile

import (
	"errors"
	"fmt"
	"os"
)

// ErrNotOwner is returned by PrivateDir for a directory owned by another
// user: its owner could loosen it again, or replace the secrets in it, at
// any time, so tightening it would not make it private.
var ErrNotOwner = errors.New("owned by another user")

// PrivateDir makes path a directory only this process's user can enter:
// it creates it (and missing parents) mode 0700, or tightens an existing
// one to 0700. It refuses a path that is not a directory and, where the
// system has file owners, a directory whose owner is not the effective
// user (ErrNotOwner), before changing anything. Errors name the path.
func PrivateDir(path string) error {
	if path == "" {
		return errors.New("directory path is empty")
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", path)
	}
	if owner, me, ok := owners(fi); ok && owner != me {
		return fmt.Errorf("%s is %w (uid %d, this process runs as uid %d): chown it to this user or pick another directory", path, ErrNotOwner, owner, me)
	}
	// MkdirAll honours the umask and leaves an existing directory as it
	// is; what goes in here is secret, so tighten it either way.
	if fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetuid|os.ModeSetgid) != 0o700 {
		if err := os.Chmod(path, 0o700); err != nil {
			return fmt.Errorf("restricting %s to mode 0700: %w", path, err)
		}
	}
	return nil
}
