package nodestate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Forget removes the identity and the last netmap: the node is not
// enrolled any more (`warren logout`). Other files in the directory stay.
// Forgetting a node that has no identity is not an error.
func (d *Dir) Forget() error {
	// The identity goes first: a crash half-way leaves a node that is
	// not enrolled, never one replaying a netmap under another identity.
	for _, name := range []string{identityFile, netMapFile} {
		if err := os.Remove(filepath.Join(d.path, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", name, err)
		}
	}
	if err := syncDir(d.path); err != nil {
		return fmt.Errorf("forgetting the identity: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
