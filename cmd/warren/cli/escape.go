package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/warrennet/warren/overlay/wire"
)

// Human output never lets text from a coordinator or a daemon drive the
// terminal: New wraps stdout and stderr in a textWriter, so every line
// any command prints has its control and format characters escaped
// (wire.EscapeText: "\x1b[31m" prints as `\x1b[31m`), and every table
// row goes through row, which escapes tabs and newlines inside a cell
// too. --json output is written as is: encoding/json escapes what JSON
// must, and programs read it.

// row writes one row of a table to w, usually a tabwriter: each cell as
// fmt.Sprint prints it, escaped with wire.EscapeText, so that a cell can
// neither add a column or a row nor hold anything a terminal acts on.
func row(w io.Writer, cells ...any) {
	var b strings.Builder
	for i, c := range cells {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(wire.EscapeText(fmt.Sprint(c)))
	}
	b.WriteByte('\n')
	io.WriteString(w, b.String())
}

// EscapeLines escapes, as wire.EscapeText, every control or format
// character of s except the tabs and newlines that lay out text. main
// prints errors with it.
func EscapeLines(s string) string {
	var b strings.Builder
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' || s[i] == '\t' {
			b.WriteString(wire.EscapeText(s[start:i]))
			b.WriteByte(s[i])
			start = i + 1
		}
	}
	if start == 0 {
		return wire.EscapeText(s)
	}
	b.WriteString(wire.EscapeText(s[start:]))
	return b.String()
}

// textWriter escapes what is written through it with EscapeLines. A
// UTF-8 sequence cut by the end of one Write is held for the next; one
// that never completes is never written (it was not text anyway). It is
// safe for concurrent use.
type textWriter struct {
	mu   sync.Mutex // guards tail and orders writes to w
	w    io.Writer
	tail []byte // the start of a UTF-8 sequence the last Write cut
}

func newTextWriter(w io.Writer) io.Writer { return &textWriter{w: w} }

func (t *textWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	buf := append(t.tail, p...)
	cut := len(buf)
	for i := len(buf) - 1; i >= 0 && i > len(buf)-utf8.UTFMax; i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	t.tail = append([]byte(nil), buf[cut:]...)
	if _, err := io.WriteString(t.w, EscapeLines(string(buf[:cut]))); err != nil {
		return 0, err
	}
	return len(p), nil
}
