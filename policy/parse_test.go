package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/warrennet/warren/overlay/wire"
)

// example is the document of the issue, with comments and trailing commas.
const example = `// Who may reach what.
{
  "groups": {
    "eng": ["alice@example.com"],
    "ops": ["bob@example.com",],
  },
  "rules": [
    /* engineers */
    {"from": ["group:eng"], "to": ["192.168.0.0/24:22", "production-server:443"]},
    {"from": ["user:bob@example.com"], "to": ["192.168.1.0/24:*"], "proto": "any"},
  ],
  "tests": [
    {"user": "alice@example.com", "allow": ["192.168.0.10:22"], "deny": ["192.168.0.10:8080"]},
  ],
}
`

func TestParseExample(t *testing.T) {
	doc, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	want := &Document{
		Groups: map[string][]string{"eng": {"alice@example.com"}, "ops": {"bob@example.com"}},
		Rules: []Rule{
			{From: []string{"group:eng"}, To: []string{"192.168.0.0/24:22", "production-server:443"}},
			{From: []string{"user:bob@example.com"}, To: []string{"192.168.1.0/24:*"}, Proto: "any"},
		},
		Tests: []Test{{User: "alice@example.com", Allow: []string{"192.168.0.10:22"}, Deny: []string{"192.168.0.10:8080"}}},
	}
	if diff := cmp.Diff(want, doc, cmpopts.IgnoreUnexported(Document{})); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	lines := map[string]int{
		groupPath("ops"):                 5,
		memberPath("ops", 0):             5,
		"rules":                          7,
		rulePath(0):                      9,
		itemPath(rulePath(1), "to", 0):   10,
		itemPath(testPath(0), "deny", 0): 13,
		itemPath(testPath(0), "deny", 7): 13, // no such element: its parent's line
		rulePath(5):                      7,  // nor this: the rules'
		"nothing":                        1,  // nor parent: the document's
	}
	for path, want := range lines {
		if got := doc.line(path); got != want {
			t.Errorf("line(%s) = %d, want %d", path, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"empty", "  \n", "line 1: the document is empty (write {} and rules)"},
		{"syntax", "{\n  \"rules\": [}\n", "line 2: not valid JSON: invalid character '}' at start of value (column 13)"},
		{"truncated", "{\"rules\": [", `line 1: not valid JSON: parsing value: unexpected EOF (column 12)`},
		{"not an object", "[]", "line 1: the document must be an object, not an array"},
		{"unknown key", "{\n\"groups\": {},\n\"rule\": []}", `line 3: unknown key "rule" in the document (want groups, rules, ssh, tests)`},
		{"keys are case-sensitive", `{"Rules": []}`, `line 1: unknown key "Rules" in the document (want groups, rules, ssh, tests)`},
		{"duplicate key", "{\"rules\": [],\n \"rules\": []}", `line 2: key "rules" appears twice in the document`},
		{"duplicate group", "{\"groups\": {\"eng\": [],\n \"eng\": []}}", `line 2: key "eng" appears twice in groups`},
		{"unknown rule key", "{\"rules\": [\n{\"from\": [\"*\"], \"to\": [\"10.0.0.0/8:*\"],\n \"prot\": \"tcp\"}]}", `line 3: unknown key "prot" in a rule (want from, to, proto)`},
		{"unknown test key", "{\"tests\": [\n{\"user\": \"a@b\", \"allows\": []}]}", `line 2: unknown key "allows" in a test (want user, allow, deny, ssh_as, ssh_deny_as)`},
		{"from is a string", "{\"rules\": [\n{\"from\": \"*\", \"to\": []}]}", "line 2: from must be an array, not a string"},
		{"to holds a number", "{\"rules\": [{\"from\": [\"*\"], \"to\": [\n22]}]}", "line 2: to entry must be a string, not a number"},
		{"proto is null", "{\"rules\": [{\"from\": [\"*\"], \"to\": [\"10.0.0.0/8:*\"], \"proto\":\n null}]}", "line 2: proto must be a string, not null"},
		{"rules is an object", "{\"rules\": {}}", "line 1: rules must be an array, not an object"},
		{"rule is a string", "{\"rules\": [\n\"*\"]}", "line 2: a rule must be an object, not a string"},
		{"group is a string", "{\"groups\": {\"eng\":\n \"alice@example.com\"}}", `line 2: group "eng" must be an array, not a string`},
		{"member is a number", "{\"groups\": {\"eng\": [\n1]}}", "line 2: a group member must be a string, not a number"},
		{"bad group name", "{\"groups\": {\n\"Eng\": []}}", `line 2: group "Eng": a group name may hold only lowercase letters, digits and inner hyphens`},
		{"bad member", "{\"groups\": {\"eng\": [\n\"alice\"]}}", `line 2: group "eng": user "alice" is not an e-mail address (name@domain)`},
		{"no from", "{\"rules\": [\n{\"to\": [\"10.0.0.0/8:*\"]}]}", "line 2: the rule has no from: name group:NAME, user:EMAIL or *"},
		{"no to", "{\"rules\": [\n{\"from\": [\"*\"], \"to\": []}]}", "line 2: the rule has no to: name CIDR:PORTS, IP:PORTS or HOST:PORTS"},
		{"bad from", "{\"rules\": [{\"from\": [\"*\",\n \"eng\"], \"to\": [\"10.0.0.0/8:*\"]}]}", `line 2: "eng" is not group:NAME, user:EMAIL or *`},
		{"empty group ref", "{\"rules\": [{\"from\": [\n\"group:\"], \"to\": [\"10.0.0.0/8:*\"]}]}", `line 2: "group:" names no group`},
		{"bad user", "{\"rules\": [{\"from\": [\n\"user:bob\"], \"to\": [\"10.0.0.0/8:*\"]}]}", `line 2: user "bob" is not an e-mail address (name@domain)`},
		{"bad proto", "{\"rules\": [{\"from\": [\"*\"], \"to\": [\"10.0.0.0/8:*\"],\n\"proto\": \"sctp\"}]}", `line 2: protocol "sctp" is not one of: tcp, udp, icmp, any`},
		{"host bits", "{\"rules\": [{\"from\": [\"*\"], \"to\": [\n\"10.0.0.1/8:22\"]}]}", `line 2: destination "10.0.0.1/8:22": 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?`},
		{"bad cidr", `{"rules": [{"from": ["*"], "to": ["10.0.0.0/33:22"]}]}`, `line 1: destination "10.0.0.0/33:22": "10.0.0.0/33" is not a valid CIDR prefix (for example 192.168.0.0/24)`},
		{"bad address", `{"rules": [{"from": ["*"], "to": ["10.0.0.256:22"]}]}`, `line 1: destination "10.0.0.256:22": "10.0.0.256" is not an IP address`},
		{"mapped address", `{"rules": [{"from": ["*"], "to": ["[::ffff:10.0.0.1]:22"]}]}`, `line 1: destination "[::ffff:10.0.0.1]:22": ::ffff:10.0.0.1 is an IPv4-mapped IPv6 address; did you mean 10.0.0.1?`},
		{"zoned address", `{"rules": [{"from": ["*"], "to": ["[fe80::1%eth0]:22"]}]}`, `line 1: destination "[fe80::1%eth0]:22": fe80::1%eth0 has a zone; policies name addresses without one`},
		{"bad host name", `{"rules": [{"from": ["*"], "to": ["Prod_Server:22"]}]}`, `line 1: destination "Prod_Server:22": "Prod_Server" is not an address, a CIDR prefix or a host name`},
		{"no port", `{"rules": [{"from": ["*"], "to": ["10.0.0.0/8"]}]}`, `line 1: destination "10.0.0.0/8": no port: write 10.0.0.0/8:PORTS (22, 8000-8999 or *)`},
		{"bad port", `{"rules": [{"from": ["*"], "to": ["10.0.0.0/8:70000"]}]}`, `line 1: destination "10.0.0.0/8:70000": port "70000": 70000 is not a port number (0-65535)`},
		{"reversed range", `{"rules": [{"from": ["*"], "to": ["10.0.0.0/8:9000-8000"]}]}`, `line 1: destination "10.0.0.0/8:9000-8000": port range "9000-8000" ends before it starts`},
		{"open range", `{"rules": [{"from": ["*"], "to": ["h:22-"]}]}`, `line 1: destination "h:22-": port range "22-": not a port number (0-65535, a range a-b, or *)`},
		{"ipv6 without brackets", `{"rules": [{"from": ["*"], "to": ["2001:db8::/64:22"]}]}`, `line 1: destination "2001:db8::/64:22": write an IPv6 destination in brackets, as in [2001:db8::1]:22`},
		{"ipv4 in brackets", `{"rules": [{"from": ["*"], "to": ["[10.0.0.1]:22"]}]}`, `line 1: destination "[10.0.0.1]:22": brackets hold an IPv6 address or prefix, not "10.0.0.1"`},
		{"unclosed bracket", `{"rules": [{"from": ["*"], "to": ["[2001:db8::1:22"]}]}`, `line 1: destination "[2001:db8::1:22": missing ] after the IPv6 address`},
		{"icmp with a port", "{\"rules\": [{\"from\": [\"*\"], \"proto\": \"icmp\", \"to\": [\"10.0.0.0/8:*\",\n\"10.0.0.0/8:22\"]}]}", `line 2: destination "10.0.0.0/8:22": icmp has no ports: write 10.0.0.0/8:*`},
		{"test without user", "{\"tests\": [\n{\"allow\": [\"10.0.0.1:22\"]}]}", "line 2: test: user is empty"},
		{"test checks nothing", "{\"tests\": [\n{\"user\": \"a@example.com\"}]}", "line 2: the test checks nothing: give allow or deny destinations, or ssh_as or ssh_deny_as principals"},
		{"test with a prefix", "{\"tests\": [{\"user\": \"a@example.com\", \"deny\": [\"10.0.0.1:22\",\n\"10.0.0.0/24:22\"]}]}", `line 2: test destination "10.0.0.0/24:22": a flow goes to one address, not to a prefix`},
		{"test with a range", "{\"tests\": [{\"user\": \"a@example.com\", \"allow\": [\n\"10.0.0.1:22-23\"]}]}", `line 2: test destination "10.0.0.1:22-23": a flow goes to one port, not 22-23`},
		{"test with any", "{\"tests\": [{\"user\": \"a@example.com\", \"allow\": [\n\"10.0.0.1:22/any\"]}]}", `line 2: test destination "10.0.0.1:22/any": a flow has one protocol: tcp, udp or icmp`},
		{"comment inside a rule", "{\"rules\": [{\"from\": [\"*\"], /* a\ncomment */ \"to\": [\n\"10.0.0.0/8\"]}]}", `line 3: destination "10.0.0.0/8": no port: write 10.0.0.0/8:PORTS (22, 8000-8999 or *)`},
		{"unknown ssh rule key", "{\"ssh\": [\n{\"from\": [\"*\"], \"to\": [\"10.0.0.0/8\"],\n \"user\": [\"root\"]}]}", `line 3: unknown key "user" in an ssh rule (want from, to, as)`},
		{"ssh is an object", "{\"ssh\": {}}", "line 1: ssh must be an array, not an object"},
		{"ssh as is a string", "{\"ssh\": [{\"from\": [\"*\"], \"to\": [\"10.0.0.0/8\"],\n\"as\": \"root\"}]}", "line 2: as must be an array, not a string"},
		{"ssh without from", "{\"ssh\": [\n{\"to\": [\"10.0.0.0/8\"], \"as\": [\"root\"]}]}", "line 2: the ssh rule has no from: name group:NAME, user:EMAIL or *"},
		{"ssh bad from", "{\"ssh\": [{\"from\": [\n\"root\"], \"to\": [\"10.0.0.0/8\"], \"as\": [\"root\"]}]}", `line 2: "root" is not group:NAME, user:EMAIL or *`},
		{"ssh without to", "{\"ssh\": [\n{\"from\": [\"*\"], \"as\": [\"root\"]}]}", "line 2: the ssh rule has no to: name CIDR, IP or HOST"},
		{"ssh without as", "{\"ssh\": [\n{\"from\": [\"*\"], \"to\": [\"10.0.0.0/8\"], \"as\": []}]}", "line 2: the ssh rule has no as: name the UNIX users it lets from log in as"},
		{"ssh to with a port", "{\"ssh\": [{\"from\": [\"*\"], \"to\": [\"10.0.0.0/8\",\n\"10.0.0.0/8:22\"], \"as\": [\"root\"]}]}", `line 2: destination "10.0.0.0/8:22": an ssh rule's destinations have no port (ssh is port 22): write 10.0.0.0/8`},
		{"ssh host with a port", "{\"ssh\": [{\"from\": [\"*\"], \"to\": [\n\"db:*\"], \"as\": [\"root\"]}]}", `line 2: destination "db:*": an ssh rule's destinations have no port (ssh is port 22): write db`},
		{"ssh ipv6 with a port", "{\"ssh\": [{\"from\": [\"*\"], \"to\": [\n\"[2001:db8::1]:22\"], \"as\": [\"root\"]}]}", `line 2: destination "[2001:db8::1]:22": an ssh rule's destinations have no port (ssh is port 22): write [2001:db8::1]`},
		{"ssh garbage after a colon", `{"ssh": [{"from": ["*"], "to": ["db:x"], "as": ["root"]}]}`, `line 1: destination "db:x": not an address, a CIDR prefix or a host name`},
		{"ssh ipv4 in brackets", `{"ssh": [{"from": ["*"], "to": ["[10.0.0.1]"], "as": ["root"]}]}`, `line 1: destination "[10.0.0.1]": brackets hold an IPv6 address or prefix, not "10.0.0.1"`},
		{"ssh host bits", `{"ssh": [{"from": ["*"], "to": ["10.0.0.1/8"], "as": ["root"]}]}`, `line 1: destination "10.0.0.1/8": 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?`},
		{"ssh zoned", `{"ssh": [{"from": ["*"], "to": ["fe80::1%eth0"], "as": ["root"]}]}`, `line 1: destination "fe80::1%eth0": fe80::1%eth0 has a zone; policies name addresses without one`},
		{"ssh mapped", `{"ssh": [{"from": ["*"], "to": ["::ffff:10.0.0.1"], "as": ["root"]}]}`, `line 1: destination "::ffff:10.0.0.1": ::ffff:10.0.0.1 is an IPv4-mapped IPv6 address; did you mean 10.0.0.1?`},
		{"ssh bad principal", "{\"ssh\": [{\"from\": [\"*\"], \"to\": [\"10.0.0.0/8\"], \"as\": [\"root\",\n\"-rf\"]}]}", `line 2: as: "-rf" is not a UNIX user name (letters, digits, '_', '.', '-', not starting with a digit, '.' or '-', at most 32)`},
		{"ssh duplicate principal", "{\"ssh\": [{\"from\": [\"*\"], \"to\": [\"10.0.0.0/8\"], \"as\": [\"root\", \"deploy\",\n\"root\"]}]}", `line 2: as: "root" appears twice`},
		{"test bad ssh_as", "{\"tests\": [{\"user\": \"a@example.com\", \"ssh_as\": [\n\"a b\"]}]}", `line 2: test ssh_as: "a b" is not a UNIX user name (letters, digits, '_', '.', '-', not starting with a digit, '.' or '-', at most 32)`},
		{"test bad ssh_deny_as", "{\"tests\": [{\"user\": \"a@example.com\", \"ssh_deny_as\": [\n\"\"]}]}", `line 2: test ssh_deny_as: "" is not a UNIX user name (letters, digits, '_', '.', '-', not starting with a digit, '.' or '-', at most 32)`},
		{"test ssh_as is a string", "{\"tests\": [{\"user\": \"a@example.com\",\n\"ssh_as\": \"root\"}]}", "line 2: ssh_as must be an array, not a string"},
		{"too deep", "{\"rules\": [{\"from\": [\"*\"], \"to\": [\n" + strings.Repeat("[", 40), "line 2: arrays and objects are nested deeper than 32 levels"},
		{"deep only inside strings and comments", "{\"rules\": [{\"from\": [\"*\"], \"to\": [\"" + strings.Repeat("[", 40) + "\\\"\"]}]\n// " + strings.Repeat("{", 40) + "\n/* " + strings.Repeat("{", 40) + " */}", `line 1: destination "` + strings.Repeat("[", 40) + `\"": missing ] after the IPv6 address`},
		{"too large", "{" + strings.Repeat(" ", MaxDocumentSize) + "}", "the document is larger than 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse([]byte(tt.text))
			if err == nil {
				t.Fatalf("Parse = %+v, want error %q", doc, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse error\n got: %s\nwant: %s", got, tt.want)
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Errorf("error %T is not an *Error", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error %q is not one line", err)
			}
		})
	}
}

func TestParseDoesNotChangeText(t *testing.T) {
	text := []byte(example)
	if _, err := Parse(text); err != nil {
		t.Fatal(err)
	}
	if string(text) != example {
		t.Errorf("Parse changed its input:\n%s", text)
	}
}

func TestParseDest(t *testing.T) {
	tests := []struct {
		in   string
		want Dest
		text string // String(); in when empty
		err  string
	}{
		{in: "192.168.0.10:22", want: Dest{Addr: addr("192.168.0.10"), Port: 22, Proto: wire.ProtoTCP}, text: "192.168.0.10:22/tcp"},
		{in: "192.168.0.10:53/udp", want: Dest{Addr: addr("192.168.0.10"), Port: 53, Proto: wire.ProtoUDP}},
		{in: "production-server:443/tcp", want: Dest{Host: "production-server", Port: 443, Proto: wire.ProtoTCP}},
		{in: "[2001:db8::1]:22", want: Dest{Addr: addr("2001:db8::1"), Port: 22, Proto: wire.ProtoTCP}, text: "[2001:db8::1]:22/tcp"},
		{in: "192.168.0.10/icmp", want: Dest{Addr: addr("192.168.0.10"), Proto: wire.ProtoICMP}},
		{in: "192.168.0.10:*/icmp", want: Dest{Addr: addr("192.168.0.10"), Proto: wire.ProtoICMP}, text: "192.168.0.10/icmp"},
		{in: "192.168.0.10:8/icmp", want: Dest{Addr: addr("192.168.0.10"), Proto: wire.ProtoICMP}, text: "192.168.0.10/icmp"},
		{in: "[2001:db8::1]/icmp", want: Dest{Addr: addr("2001:db8::1"), Proto: wire.ProtoICMP}},
		{in: "2001:db8::1/icmp", want: Dest{Addr: addr("2001:db8::1"), Proto: wire.ProtoICMP}, text: "[2001:db8::1]/icmp"},
		{in: "gw/icmp", want: Dest{Host: "gw", Proto: wire.ProtoICMP}},
		{in: "192.168.0.10:0", want: Dest{Addr: addr("192.168.0.10"), Proto: wire.ProtoTCP}, text: "192.168.0.10:0/tcp"},
		{in: "192.168.0.10", err: `"192.168.0.10": no port: write 192.168.0.10:PORTS (22, 8000-8999 or *)`},
		{in: "192.168.0.10:*", err: `"192.168.0.10:*": a flow goes to one port, not *`},
		{in: "192.168.0.10:22/sctp", err: `"192.168.0.10:22/sctp": protocol "sctp" is not one of: tcp, udp, icmp, any`},
		{in: "192.168.0.10:x/icmp", err: `"192.168.0.10:x/icmp": "x" is not a port`},
		{in: "2001:db8::1:22", err: `"2001:db8::1:22": write an IPv6 destination in brackets, as in [2001:db8::1]:22`},
		{in: "192.168.0.0/24:22", err: `"192.168.0.0/24:22": a flow goes to one address, not to a prefix`},
		{in: "", err: `"": no port: write :PORTS (22, 8000-8999 or *)`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDest(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("ParseDest(%q) = %+v, %v, want error %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDest(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseDest(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			text := tt.text
			if text == "" {
				text = tt.in
			}
			if got.String() != text {
				t.Errorf("String() = %q, want %q", got.String(), text)
			}
			if again, err := ParseDest(got.String()); err != nil || again != got {
				t.Errorf("ParseDest(String()) = %+v, %v, want %+v", again, err, got)
			}
		})
	}
}

func TestDestResolve(t *testing.T) {
	hosts := map[string]netip.Addr{"db": addr("::ffff:192.168.1.20"), "broken": {}}
	tests := []struct {
		dest Dest
		want string // address or error
	}{
		{Dest{Addr: addr("10.0.0.1")}, "10.0.0.1"},
		{Dest{Host: "db"}, "192.168.1.20"},
		{Dest{Host: "cache"}, `host "cache" is not declared (warren hosts add cache IP)`},
		{Dest{Host: "broken"}, `host "broken" has no address`},
	}
	for _, tt := range tests {
		a, err := tt.dest.Resolve(hosts)
		got := a.String()
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("Resolve(%+v) = %s, want %s", tt.dest, got, tt.want)
		}
	}
}
