// Package archtest holds the tests that keep Warren's shape: every package
// has a doc comment, every Go file is gofmt-clean, and imports follow the
// dependency rules of docs/ARCHITECTURE.md (cmd → roles → mechanisms →
// pure, never the other way), encoded as the table in rules_test.go.
//
// The package has no code of its own; it exists for `go test`. Its tests
// run the go command (go list, go mod edit) from the module root. It must
// not import any other Warren package.
package archtest
