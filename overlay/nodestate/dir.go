package nodestate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/warrennet/warren/overlay/atomicfile"
)

// File names inside the state directory.
const (
	identityFile = "identity.json"
	netMapFile   = "netmap.json"
)

// Dir is a node's state directory. Its methods are not safe for concurrent
// use by several processes; one daemon owns one directory.
type Dir struct {
	path string
}

// Open opens the state directory at path, creating it (and its parents)
// if needed. The directory itself is made mode 0700 (an existing one is
// tightened); one owned by another user is refused (atomicfile.PrivateDir).
// Temporary files left by a crash in the middle of a save are removed.
func Open(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("state directory path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", path, err)
	}
	// The directory holds a private key: created or tightened to 0700,
	// and refused if another user owns it.
	if err := atomicfile.PrivateDir(abs); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	d := &Dir{path: abs}
	if err := d.removeTemps(); err != nil {
		return nil, err
	}
	return d, nil
}

// Path returns the directory's absolute path.
func (d *Dir) Path() string { return d.path }

func (d *Dir) removeTemps() error { return atomicfile.RemoveTemps(d.path) }

// load decodes the named file into v, strictly: unknown fields and
// trailing data are errors. A missing file returns an error matching
// fs.ErrNotExist.
func (d *Dir) load(name string, v any) error {
	p := filepath.Join(d.path, name)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s: unexpected data after the JSON object", p)
	}
	return nil
}

// save encodes v as indented JSON and replaces the named file with it
// atomically.
func (d *Dir) save(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", name, err)
	}
	b = append(b, '\n')
	return d.write(name, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// write replaces the named file atomically (mode 0600) with what write
// produces.
func (d *Dir) write(name string, write func(io.Writer) error) error {
	if err := atomicfile.Write(filepath.Join(d.path, name), 0o600, write); err != nil {
		return fmt.Errorf("saving %s: %w", name, err)
	}
	return nil
}
