package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// pkg is the part of `go list -json` the tests read.
type pkg struct {
	ImportPath string
	Name       string
	Dir        string
	Standard   bool
	DepOnly    bool // a dependency, not one of the module's packages
	GoFiles    []string
	CgoFiles   []string
	Imports    []string
}

// module is what the tests know of the module, loaded once.
type module struct {
	path string          // module path
	root string          // directory holding go.mod
	own  []string        // the module's packages, sorted as go list prints them
	pkgs map[string]*pkg // every package in the build graph, by import path
	std  []string        // every standard library package
	reqs []string        // module paths go.mod requires
}

var (
	loadOnce sync.Once
	loaded   *module
	loadErr  error
)

// loadModule runs the go command once per test binary and returns the
// module's packages with their whole non-test import graph.
func loadModule(t *testing.T) *module {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = load() })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

func load() (*module, error) {
	// go test puts its own GOROOT/bin first on PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("finding the go command: %w", err)
	}
	goCmd := func(dir string, args ...string) (string, error) { return run(goTool, dir, args...) }
	gomod, err := goCmd("", "env", "GOMOD")
	if err != nil {
		return nil, err
	}
	gomod = strings.TrimSpace(gomod)
	if gomod == "" || gomod == "/dev/null" {
		return nil, errors.New("not inside a module")
	}
	m := &module{root: filepath.Dir(gomod), pkgs: make(map[string]*pkg)}

	var modFile struct {
		Module  struct{ Path string }
		Require []struct{ Path string }
	}
	out, err := goCmd(m.root, "mod", "edit", "-json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(out), &modFile); err != nil {
		return nil, fmt.Errorf("decoding go mod edit -json: %w", err)
	}
	m.path = modFile.Module.Path
	for _, r := range modFile.Require {
		m.reqs = append(m.reqs, r.Path)
	}

	out, err = goCmd(m.root, "list", "-deps", "-json", "./...")
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		p := new(pkg)
		err := dec.Decode(p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("decoding go list -json: %w", err)
		}
		m.pkgs[p.ImportPath] = p
		if !p.DepOnly {
			m.own = append(m.own, p.ImportPath)
		}
	}

	out, err = goCmd(m.root, "list", "std")
	if err != nil {
		return nil, err
	}
	m.std = strings.Fields(out)
	return m, nil
}

// run runs the go command in dir and returns its standard output.
func run(goTool, dir string, args ...string) (string, error) {
	cmd := exec.Command(goTool, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// short drops the module path from a Warren import path, for messages.
func (m *module) short(path string) string {
	if path == m.path {
		return "."
	}
	if rest, ok := strings.CutPrefix(path, m.path+"/"); ok {
		return rest
	}
	return path
}
