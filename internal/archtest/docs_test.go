package archtest

import (
	"go/parser"
	"go/token"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs checks that every package has a doc comment on the
// package clause of one of its non-test files, starting "Package NAME"
// (or "Command NAME" for a main package, NAME being its directory).
func TestPackageDocs(t *testing.T) {
	m := loadModule(t)
	for _, ip := range m.own {
		p := m.pkgs[ip]
		want := "Package " + p.Name
		if p.Name == "main" {
			want = "Command " + path.Base(ip)
		}
		files := append(append([]string{}, p.GoFiles...), p.CgoFiles...)
		if len(files) == 0 {
			t.Errorf("%s has no non-test Go file to carry its package doc; add a doc.go", m.short(ip))
			continue
		}
		var docs []string
		fset := token.NewFileSet()
		for _, name := range files {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Errorf("%s: %v", m.short(ip), err)
				continue
			}
			if f.Doc != nil {
				docs = append(docs, f.Doc.Text())
			}
		}
		switch {
		case len(docs) == 0:
			t.Errorf("%s has no package doc comment; add one (in doc.go) starting %q that says what it owns and what it must not import", m.short(ip), "// "+want+" ")
		case !startsWith(docs, want):
			t.Errorf("%s: package doc starts %q, want %q", m.short(ip), firstWords(docs[0], 2), want)
		}
	}
}

// startsWith reports whether one of docs begins with the words of want.
func startsWith(docs []string, want string) bool {
	for _, d := range docs {
		if firstWords(d, 2) == want {
			return true
		}
	}
	return false
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(n, len(f))], " ")
}
