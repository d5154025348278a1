package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/tailscale/hujson"
)

// MaxDocumentSize bounds a document's text.
const MaxDocumentSize = 1 << 20

// Document is a policy document as an admin writes it (HuJSON: JSON with
// comments and trailing commas). Parse fills it and records the line of
// each element for errors and warnings; a Document built in code has no
// lines, and its errors name elements by path instead ("rules[0].to[1]").
type Document struct {
	// Groups maps a group name to the users (e-mail addresses) in it.
	Groups map[string][]string `json:"groups,omitempty"`
	// Rules say who may reach what. Their order does not matter: a flow
	// passes if any rule allows it.
	Rules []Rule `json:"rules,omitempty"`
	// SSH rules say who may log in with ssh to which hosts, as which
	// UNIX users (the principals of their SSH certificates). Each also
	// lets its users reach TCP port 22 of its destinations.
	SSH []SSHRule `json:"ssh,omitempty"`
	// Tests are checked every time the document is compiled.
	Tests []Test `json:"tests,omitempty"`

	lines map[string]int // element path → 1-based line; nil when built in code
}

// Rule lets clients reach destinations.
type Rule struct {
	// From holds "group:NAME", "user:EMAIL" or "*" (every client, with or
	// without a user).
	From []string `json:"from"`
	// To holds "CIDR:PORTS", "IP:PORTS", "HOST:PORTS" or, for IPv6,
	// "[2001:db8::/64]:PORTS"; PORTS is 22, 8000-8999 or *.
	To []string `json:"to"`
	// Proto is tcp (when empty), udp, icmp or any.
	Proto string `json:"proto,omitempty"`
}

// SSHRule lets clients log in with ssh: it grants TCP port 22 of its
// destinations, and its principals to the SSH certificates of its users.
// Whether a host accepts a principal is the host's sshd's decision (its
// AuthorizedPrincipalsFile), not the policy's.
type SSHRule struct {
	// From is as in Rule.
	From []string `json:"from"`
	// To holds "CIDR", "IP" or "HOST", without ports (ssh is port 22);
	// IPv6 bare or in brackets: "2001:db8::/64", "[2001:db8::1]".
	To []string `json:"to"`
	// As holds the principals: the UNIX users From may log in as.
	As []string `json:"as"`
}

// Test is a document's own check: User must reach every Allow destination
// and no Deny one, and be able to log in with ssh as every SSHAs principal
// and as no SSHDenyAs one. Destinations are read by ParseDest.
type Test struct {
	User      string   `json:"user"`
	Allow     []string `json:"allow,omitempty"`
	Deny      []string `json:"deny,omitempty"`
	SSHAs     []string `json:"ssh_as,omitempty"`
	SSHDenyAs []string `json:"ssh_deny_as,omitempty"`
}

// Error is a problem with a document. Its text is one line: "line N: ..."
// when the document was parsed from text.
type Error struct {
	// Line is 1-based; 0 when the document was built in code.
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// at returns an *Error located at the element with the given path: its
// line when the document was parsed, else the path itself.
func (d *Document) at(path, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if line := d.line(path); line > 0 {
		return &Error{Line: line, Msg: msg}
	}
	if path == "" {
		return &Error{Msg: msg}
	}
	return &Error{Msg: path + ": " + msg}
}

// line returns the line of the element at path, or of the nearest element
// that encloses it; 0 for a document built in code.
func (d *Document) line(path string) int {
	if d.lines == nil {
		return 0
	}
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return d.lines[""]
}

// Element paths, as the parser records them and errors name them.
func groupPath(name string) string         { return fmt.Sprintf("groups[%q]", name) }
func memberPath(name string, i int) string { return fmt.Sprintf("groups[%q][%d]", name, i) }
func rulePath(i int) string                { return fmt.Sprintf("rules[%d]", i) }
func sshPath(i int) string                 { return fmt.Sprintf("ssh[%d]", i) }
func testPath(i int) string                { return fmt.Sprintf("tests[%d]", i) }
func itemPath(parent, key string, i int) string {
	return fmt.Sprintf("%s.%s[%d]", parent, key, i)
}

// Parse reads a document and checks everything that does not depend on
// the coordinator's state (users, provider groups, hosts and routes are
// Compile's): the syntax, unknown and duplicate keys, the types of values,
// group names and members, each rule's from, to and proto, each ssh rule's
// from, to and as, each test's user, destinations and principals. Errors are *Error, one line, "line N: ...". Parse does
// not keep text.
func Parse(text []byte) (*Document, error) {
	if len(text) > MaxDocumentSize {
		return nil, &Error{Msg: fmt.Sprintf("the document is larger than %d bytes", MaxDocumentSize)}
	}
	if len(bytes.TrimSpace(text)) == 0 {
		return nil, &Error{Line: 1, Msg: "the document is empty (write {} and rules)"}
	}
	if err := checkDepth(text); err != nil {
		return nil, err // before hujson, which recurses once per level
	}
	buf := bytes.Clone(text) // Standardize rewrites comments in place.
	v, err := hujson.Parse(buf)
	if err != nil {
		return nil, syntaxError(err)
	}
	p := newParser(buf)
	if err := p.top(&v); err != nil {
		return nil, err
	}
	v.Standardize() // keeps offsets, so decode errors map to lines
	std := v.Pack()
	dec := json.NewDecoder(bytes.NewReader(std))
	dec.DisallowUnknownFields()
	doc := p.doc
	if err := dec.Decode(doc); err != nil {
		return nil, decodeError(std, err)
	}
	if err := doc.check(); err != nil {
		return nil, err
	}
	return doc, nil
}

// maxDepth bounds the nesting of arrays and objects; a document needs 4.
const maxDepth = 32

// checkDepth refuses text nested deeper than maxDepth, skipping strings
// and comments. Anything else wrong with the text is left to hujson.
func checkDepth(text []byte) error {
	depth := 0
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case c == '"':
			for i++; i < len(text) && text[i] != '"'; i++ {
				if text[i] == '\\' {
					i++
				}
			}
		case c == '/' && i+1 < len(text) && text[i+1] == '/':
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			end := bytes.Index(text[i+2:], []byte("*/"))
			if end < 0 {
				return nil
			}
			i += 2 + end + 1
		case c == '[' || c == '{':
			if depth++; depth > maxDepth {
				return &Error{Line: lineAt(text, i), Msg: fmt.Sprintf("arrays and objects are nested deeper than %d levels", maxDepth)}
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return nil
}

// syntaxError rewrites hujson's "hujson: line 3, column 5: ..." as
// "line 3: ... (column 5)".
func syntaxError(err error) error {
	var line, col int
	if _, serr := fmt.Sscanf(err.Error(), "hujson: line %d, column %d:", &line, &col); serr != nil {
		return &Error{Msg: "not valid JSON: " + oneLine(strings.TrimPrefix(err.Error(), "hujson: "))}
	}
	msg := err.Error()
	if inner := errors.Unwrap(err); inner != nil {
		msg = inner.Error()
	}
	return &Error{Line: line, Msg: fmt.Sprintf("not valid JSON: %s (column %d)", oneLine(msg), col)}
}

// decodeError locates an encoding/json error. The walk in parser.top
// checks every key and type first, so this is a backstop.
func decodeError(std []byte, err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	off := int64(-1)
	switch {
	case errors.As(err, &te):
		off = te.Offset
	case errors.As(err, &se):
		off = se.Offset
	}
	msg := oneLine(strings.TrimPrefix(err.Error(), "json: "))
	if off < 0 {
		return &Error{Msg: msg}
	}
	return &Error{Line: lineAt(std, int(min(max(off-1, 0), int64(len(std))))), Msg: msg}
}

// oneLine escapes what does not print in a message from a JSON parser,
// which may quote the offending input.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
}

func lineAt(text []byte, off int) int { return 1 + bytes.Count(text[:off], []byte("\n")) }

// parser walks the HuJSON tree before it is decoded: it records the line
// of every element and refuses unknown keys, duplicate keys and values of
// the wrong type, each at its own line (encoding/json names neither the
// line of an unknown key nor, exactly, of a type error).
type parser struct {
	newlines []int // offsets of the text's newlines
	doc      *Document
}

func newParser(text []byte) *parser {
	p := &parser{doc: &Document{lines: map[string]int{"": 1}}}
	for i, c := range text {
		if c == '\n' {
			p.newlines = append(p.newlines, i)
		}
	}
	return p
}

// line returns the 1-based line of the byte at off.
func (p *parser) line(off int) int {
	n, _ := slices.BinarySearch(p.newlines, off)
	return 1 + n
}

func (p *parser) record(path string, v *hujson.Value) {
	p.doc.lines[path] = p.line(v.StartOffset)
}

func (p *parser) errAt(v *hujson.Value, format string, args ...any) error {
	return &Error{Line: p.line(v.StartOffset), Msg: fmt.Sprintf(format, args...)}
}

func kindName(v *hujson.Value) string {
	switch v.Value.Kind() {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "a value"
}

// object calls f for each member of v, an object, after checking that its
// name is one of keys (any name when keys is nil) and not a repeat.
func (p *parser) object(v *hujson.Value, what string, keys []string, f func(name string, m *hujson.ObjectMember) error) error {
	obj, ok := v.Value.(*hujson.Object)
	if !ok {
		return p.errAt(v, "%s must be an object, not %s", what, kindName(v))
	}
	seen := map[string]bool{}
	for i := range obj.Members {
		m := &obj.Members[i]
		name := m.Name.Value.(hujson.Literal).String()
		if keys != nil && !slices.Contains(keys, name) {
			return p.errAt(&m.Name, "unknown key %q in %s (want %s)", name, what, strings.Join(keys, ", "))
		}
		if seen[name] {
			return p.errAt(&m.Name, "key %q appears twice in %s", name, what)
		}
		seen[name] = true
		if err := f(name, m); err != nil {
			return err
		}
	}
	return nil
}

// array calls f for each element of v, an array.
func (p *parser) array(v *hujson.Value, what string, f func(i int, e *hujson.Value) error) error {
	arr, ok := v.Value.(*hujson.Array)
	if !ok {
		return p.errAt(v, "%s must be an array, not %s", what, kindName(v))
	}
	for i := range arr.Elements {
		if err := f(i, &arr.Elements[i]); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) str(v *hujson.Value, what string) error {
	if v.Value.Kind() != '"' {
		return p.errAt(v, "%s must be a string, not %s", what, kindName(v))
	}
	return nil
}

// strs checks that v is an array of strings, recording each one's line.
func (p *parser) strs(v *hujson.Value, path, what string) error {
	p.record(path, v)
	return p.array(v, what, func(i int, e *hujson.Value) error {
		p.record(fmt.Sprintf("%s[%d]", path, i), e)
		return p.str(e, what+" entry")
	})
}

func (p *parser) top(v *hujson.Value) error {
	return p.object(v, "the document", []string{"groups", "rules", "ssh", "tests"}, func(name string, m *hujson.ObjectMember) error {
		p.record(name, &m.Name)
		switch name {
		case "groups":
			return p.object(&m.Value, "groups", nil, func(g string, m *hujson.ObjectMember) error {
				p.record(groupPath(g), &m.Name)
				return p.array(&m.Value, fmt.Sprintf("group %q", g), func(i int, e *hujson.Value) error {
					p.record(memberPath(g, i), e)
					return p.str(e, "a group member")
				})
			})
		case "rules":
			return p.array(&m.Value, "rules", func(i int, e *hujson.Value) error {
				path := rulePath(i)
				p.record(path, e)
				return p.object(e, "a rule", []string{"from", "to", "proto"}, func(key string, m *hujson.ObjectMember) error {
					if key == "proto" {
						p.record(path+".proto", &m.Value)
						return p.str(&m.Value, "proto")
					}
					return p.strs(&m.Value, path+"."+key, key)
				})
			})
		case "ssh":
			return p.array(&m.Value, "ssh", func(i int, e *hujson.Value) error {
				path := sshPath(i)
				p.record(path, e)
				return p.object(e, "an ssh rule", []string{"from", "to", "as"}, func(key string, m *hujson.ObjectMember) error {
					return p.strs(&m.Value, path+"."+key, key)
				})
			})
		default: // tests
			return p.array(&m.Value, "tests", func(i int, e *hujson.Value) error {
				path := testPath(i)
				p.record(path, e)
				return p.object(e, "a test", []string{"user", "allow", "deny", "ssh_as", "ssh_deny_as"}, func(key string, m *hujson.ObjectMember) error {
					if key == "user" {
						p.record(path+".user", &m.Value)
						return p.str(&m.Value, "user")
					}
					return p.strs(&m.Value, path+"."+key, key)
				})
			})
		}
	})
}
