package wire

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxCommentLen bounds the comment on a route, a host or a split-tunnel
// entry, in bytes.
const MaxCommentLen = 200

// MaxHostnameLen bounds the hostname a node reports when it enrolls.
const MaxHostnameLen = 253

// UnsafeRune reports whether r must not appear in a name or a comment,
// because a terminal would act on it rather than show it, or a person
// would read the text differently from what it holds: the C0 controls
// (tab and newline too), DEL and the C1 controls (Unicode Cc); format
// characters (Cf: the bidi embeddings, overrides and isolates, zero-width
// joiners, the byte-order mark, …); and the line and paragraph
// separators. Bytes that are not UTF-8 are refused and escaped apart.
func UnsafeRune(r rune) bool {
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

// ValidateText accepts one line of free text, such as a comment: valid
// UTF-8, at most max bytes, no UnsafeRune. what names the field in the
// error, which quotes no part of s.
func ValidateText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s is longer than %d characters", what, max)
	}
	return checkRunes(what, s, false)
}

// ValidateComment is ValidateText for a comment of MaxCommentLen bytes.
func ValidateComment(s string) error { return ValidateText("comment", s, MaxCommentLen) }

// ValidateDocument accepts text of many lines, such as the access-policy
// document: as ValidateText, but tabs and line ends (LF, CRLF) are
// allowed; a CR alone, which would overwrite a line on a terminal, is not.
// Its length is the caller's to bound.
func ValidateDocument(what, s string) error { return checkRunes(what, s, true) }

func checkRunes(what, s string, multiline bool) error {
	line := 1
	for i, r := range s {
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			return fmt.Errorf("%s holds a byte that is not UTF-8 at byte %d%s", what, i, lineOf(multiline, line))
		}
		if multiline && (r == '\t' || r == '\n' || r == '\r' && strings.HasPrefix(s[i+1:], "\n")) {
			if r == '\n' {
				line++
			}
			continue
		}
		if UnsafeRune(r) {
			return fmt.Errorf("%s holds %U, a control or format character, at byte %d%s; only printable text is allowed", what, r, i, lineOf(multiline, line))
		}
	}
	return nil
}

func lineOf(multiline bool, line int) string {
	if !multiline {
		return ""
	}
	return fmt.Sprintf(" (line %d)", line)
}

// EscapeText returns s with every UnsafeRune written as a Go escape
// (\x1b, \u202e, \t) and every byte that is not UTF-8 as \xNN, leaving
// all other runes, backslashes included, as they are. It makes text from
// a coordinator or a daemon safe to print on a terminal; text that holds
// no unsafe rune comes back unchanged.
func EscapeText(s string) string {
	i := firstUnsafe(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case UnsafeRune(r):
			// QuoteRune escapes a control or format rune; drop its quotes.
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// firstUnsafe returns the index of the first unsafe rune or non-UTF-8
// byte of s, or -1.
func firstUnsafe(s string) int {
	for i, r := range s {
		if UnsafeRune(r) || r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			return i
		}
	}
	return -1
}
