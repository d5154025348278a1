package wire

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// unsafeSamples are runes a terminal acts on or a reader misreads, one of
// each kind UnsafeRune refuses.
var unsafeSamples = []struct {
	name string
	r    rune
}{
	{"NUL", 0x00}, {"BEL", 0x07}, {"backspace", 0x08}, {"tab", '\t'}, {"newline", '\n'},
	{"carriage return", '\r'}, {"ESC", 0x1b}, {"unit separator", 0x1f}, {"DEL", 0x7f},
	{"C1 PAD", 0x80}, {"C1 NEL", 0x85}, {"C1 CSI", 0x9b}, {"C1 APC", 0x9f},
	{"soft hyphen", 0xad}, {"arabic letter mark", 0x61c}, {"zero-width space", 0x200b},
	{"zero-width joiner", 0x200d}, {"left-to-right mark", 0x200e}, {"right-to-left mark", 0x200f},
	{"line separator", 0x2028}, {"paragraph separator", 0x2029},
	{"LRE", 0x202a}, {"RLE", 0x202b}, {"PDF", 0x202c}, {"LRO", 0x202d}, {"RLO", 0x202e},
	{"LRI", 0x2066}, {"RLI", 0x2067}, {"FSI", 0x2068}, {"PDI", 0x2069},
	{"word joiner", 0x2060}, {"BOM", 0xfeff}, {"interlinear annotation", 0xfff9}, {"tag space", 0xe0020},
}

func TestUnsafeRunes(t *testing.T) {
	for _, tt := range unsafeSamples {
		if !UnsafeRune(tt.r) {
			t.Errorf("UnsafeRune(%U %s) = false, want true", tt.r, tt.name)
		}
	}
	for _, r := range []rune{' ', 'a', '~', '\\', 0xa0, 0xe9, 0x4e2d, 0x1f600, utf8.RuneError} {
		if UnsafeRune(r) {
			t.Errorf("UnsafeRune(%U %q) = true, want false", r, r)
		}
	}
}

func TestValidateText(t *testing.T) {
	tests := []struct {
		name, in, want string // want "" is valid
	}{
		{"empty", "", ""},
		{"plain", "office LAN, 2nd floor", ""},
		{"accents and emoji", "café – 東京 😀", ""},
		{"backslash escapes as text", `not \x1b[31m red`, ""},
		{"replacement character", "a\uFFFDb", ""},
		{"longest", strings.Repeat("x", MaxCommentLen), ""},
		{"too long", strings.Repeat("x", MaxCommentLen+1), "comment is longer than 200 characters"},
		{"ANSI colour", "ok\x1b[31mred", "comment holds U+001B, a control or format character, at byte 2; only printable text is allowed"},
		{"bidi override", "abc\u202etxt.exe", "comment holds U+202E, a control or format character, at byte 3; only printable text is allowed"},
		{"newline", "line\nfake row", "comment holds U+000A, a control or format character, at byte 4; only printable text is allowed"},
		{"C1 CSI", "x\u009b31m", "comment holds U+009B, a control or format character, at byte 1; only printable text is allowed"},
		{"not UTF-8", "x\x9b31m", "comment holds a byte that is not UTF-8 at byte 1"},
	}
	for _, tt := range tests {
		err := ValidateComment(tt.in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: ValidateComment(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
	for _, tt := range unsafeSamples {
		if err := ValidateText("name", "a"+string(tt.r)+"b", 100); err == nil {
			t.Errorf("ValidateText accepts %s (%U)", tt.name, tt.r)
		}
	}
}

func TestValidateDocument(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"lines and tabs", "{\n\t\"rules\": [],\r\n}\n", ""},
		{"ESC on line 3", "{\n\n// \x1b[2J\n}", "doc holds U+001B, a control or format character, at byte 6 (line 3); only printable text is allowed"},
		{"lone CR", "// ok\rfake\n", "doc holds U+000D, a control or format character, at byte 5 (line 1); only printable text is allowed"},
		{"bidi isolate", "{\n\"x\u2066\"}", "doc holds U+2066, a control or format character, at byte 4 (line 2); only printable text is allowed"},
		{"not UTF-8", "{\n\xff}", "doc holds a byte that is not UTF-8 at byte 2 (line 2)"},
	}
	for _, tt := range tests {
		err := ValidateDocument("doc", tt.in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: ValidateDocument(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestValidateUserRefusesUnsafeRunes(t *testing.T) {
	if err := ValidateUser("alice@example.com"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range unsafeSamples {
		if err := ValidateUser("ali" + string(tt.r) + "ce@example.com"); err == nil {
			t.Errorf("ValidateUser accepts %s (%U)", tt.name, tt.r)
		}
	}
	if err := ValidateUser("ali\xffce@example.com"); err == nil {
		t.Errorf("ValidateUser accepts a byte that is not UTF-8")
	}
}

func TestEscapeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain café 😀", "plain café 😀"},
		{`a\x1b stays`, `a\x1b stays`},
		{"red \x1b[31mtext\x1b[0m", `red \x1b[31mtext\x1b[0m`},
		{"tab\tnew\nline\r", `tab\tnew\nline\r`},
		{"bell\a del\x7f", `bell\a del\x7f`},
		{"c1 \u009b csi", `c1 \u009b csi`},
		{"evil\u202etxt.exe", `evil\u202etxt.exe`},
		{"zw\u200bsp", `zw\u200bsp`},
		{"raw \x9b byte", `raw \x9b byte`},
		{"cut \xe2\x80", `cut \xe2\x80`},
		{"keep \uFFFD", "keep \uFFFD"},
	}
	for _, tt := range tests {
		got := EscapeText(tt.in)
		if got != tt.want {
			t.Errorf("EscapeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if err := ValidateText("x", got, 1<<20); err != nil {
			t.Errorf("EscapeText(%q) = %q, which is not printable: %v", tt.in, got, err)
		}
	}
}

// FuzzValidateText checks the validator and the escaper against each
// other and against a rune-by-rune reference: ValidateText accepts
// exactly valid UTF-8 without an UnsafeRune; EscapeText leaves accepted
// text alone and makes any text acceptable; errors are one line and
// quote nothing of the input.
func FuzzValidateText(f *testing.F) {
	for _, s := range []string{"", "office", "a\x1b[31mb", "x\u202ey", "\xff\xfe", "tab\there", "café 😀", "a\r\nb", "\u009b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		wantOK := utf8.ValidString(s)
		for _, r := range s {
			if UnsafeRune(r) {
				wantOK = false
			}
		}
		err := ValidateText("comment", s, 1<<20)
		if (err == nil) != wantOK {
			t.Fatalf("ValidateText(%q) = %v, want ok=%v", s, err, wantOK)
		}
		if err != nil && ValidateText("error", err.Error(), 1<<20) != nil {
			t.Fatalf("ValidateText(%q) error %q is not one printable line", s, err)
		}
		esc := EscapeText(s)
		if wantOK && esc != s {
			t.Fatalf("EscapeText(%q) = %q, want it unchanged", s, esc)
		}
		if err := ValidateText("escaped", esc, 1<<30); err != nil {
			t.Fatalf("EscapeText(%q) = %q: %v", s, esc, err)
		}
		derr := ValidateDocument("doc", s)
		if err == nil && derr != nil {
			t.Fatalf("ValidateDocument refuses %q, which ValidateText accepts: %v", s, derr)
		}
		if derr == nil && ValidateText("doc", strings.NewReplacer("\r\n", "", "\n", "", "\t", "").Replace(s), 1<<20) != nil {
			t.Fatalf("ValidateDocument accepts %q, which holds more than tabs and line ends", s)
		}
	})
}

func TestFlowReportRefusesUnsafeText(t *testing.T) {
	ok := FlowRecord{ID: "r1", User: "alice@example.com", Node: "laptop", Proto: ProtoTCP, Decision: DecisionDeny, Reason: "no rule allows it"}
	if err := (FlowReport{Records: []FlowRecord{ok}}).Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*FlowRecord)
		want string
	}{
		{"reason", func(r *FlowRecord) { r.Reason = "denied\x1b[2J" }, "record 0: reason holds U+001B, a control or format character, at byte 6; only printable text is allowed"},
		{"node", func(r *FlowRecord) { r.Node = "lap\u202etop" }, "record 0: node holds U+202E, a control or format character, at byte 3; only printable text is allowed"},
		{"user", func(r *FlowRecord) { r.User = "a\u009b@b" }, "record 0: user holds U+009B, a control or format character, at byte 1; only printable text is allowed"},
		{"id", func(r *FlowRecord) { r.ID = "r\n1" }, "record 0: id holds U+000A, a control or format character, at byte 1; only printable text is allowed"},
	}
	for _, tt := range tests {
		rec := ok
		tt.edit(&rec)
		err := FlowReport{Records: []FlowRecord{rec}}.Validate()
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: Validate = %v, want %s", tt.name, err, tt.want)
		}
	}
}
