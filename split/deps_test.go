package split

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports enforces the package doc: split imports no Warren package
// other than routes, and nothing that does I/O or logs.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{"os", "io", "log", "log/slog", "net/http", "time", "sync"}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		test := strings.HasSuffix(name, "_test.go")
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if (path == "github.com/warrennet/warren" || strings.HasPrefix(path, "github.com/warrennet/warren/")) &&
				path != "github.com/warrennet/warren/routes" {
				t.Errorf("%s imports %s; split may import no Warren package but routes", name, path)
			}
			for _, bad := range forbidden {
				if path == bad && !test {
					t.Errorf("%s imports %s; split is pure", name, path)
				}
			}
		}
	}
}
