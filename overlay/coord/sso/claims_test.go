package sso

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func TestParseGroups(t *testing.T) {
	tests := []struct {
		raw     string
		want    []string
		wantErr bool
	}{
		{raw: `null`},
		{raw: `[]`},
		{raw: `""`},
		{raw: `"eng"`, want: []string{"eng"}},
		{raw: `["ops","eng","ops",""]`, want: []string{"eng", "ops"}},
		{raw: `["a", null]`, want: []string{"a"}},
		{raw: `42`, wantErr: true},
		{raw: `{"eng":true}`, wantErr: true},
		{raw: `["eng", 1]`, wantErr: true},
		{raw: `["eng", "evil\u202e"]`, wantErr: true},
		{raw: `["line\nbreak"]`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseGroups(json.RawMessage(tt.raw))
		if (err != nil) != tt.wantErr {
			t.Errorf("parseGroups(%s): got error %v, want error %v", tt.raw, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseGroups(%s) (-want +got):\n%s", tt.raw, diff)
		}
	}
}

func TestParseBool(t *testing.T) {
	tests := []struct {
		raw     string
		want    bool
		wantErr bool
	}{
		{raw: ``}, {raw: `null`}, {raw: `false`}, {raw: `"false"`},
		{raw: `true`, want: true}, {raw: `"True"`, want: true},
		{raw: `1`, wantErr: true}, {raw: `"yes"`, wantErr: true},
	}
	for _, tt := range tests {
		var raw json.RawMessage
		if tt.raw != "" {
			raw = json.RawMessage(tt.raw)
		}
		got, err := parseBool(raw)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseBool(%s): got %v, %v; want %v, error %v", tt.raw, got, err, tt.want, tt.wantErr)
		}
	}
}

// FuzzParseGroups: whatever the provider sends, the groups are sorted,
// unique, non-empty, one line of printable text each; or the claim is
// refused.
func FuzzParseGroups(f *testing.F) {
	for _, s := range []string{`null`, `"eng"`, `["b","a","b"]`, `[1]`, `["\u0000"]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !json.Valid([]byte(raw)) {
			return
		}
		got, err := parseGroups(json.RawMessage(raw))
		if err != nil {
			if got != nil {
				t.Fatalf("refused claim %s yielded groups %q", raw, got)
			}
			return
		}
		if got != nil && len(got) == 0 {
			t.Fatalf("claim %s: empty non-nil groups", raw)
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("claim %s: groups %q not sorted and unique", raw, got)
		}
		for _, g := range got {
			if g == "" || wire.ValidateText("group", g, maxGroupLen) != nil {
				t.Fatalf("claim %s: group %q is not one line of printable text", raw, g)
			}
		}
	})
}
