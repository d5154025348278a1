package wire

import (
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	tok := Token{URL: "https://198.51.100.10:8443", Pin: strings.Repeat("ab", 32), Secret: "0123456789abcdef0123"}
	got, err := ParseToken("  " + tok.String() + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got != tok {
		t.Errorf("round trip = %+v, want %+v", got, tok)
	}
}

func TestParseTokenRejects(t *testing.T) {
	valid := Token{URL: "https://c.example:8443", Secret: "0123456789abcdef0123"}
	tests := []struct{ name, in, want string }{
		{"empty", "", ErrBadToken.Error()},
		{"no prefix", "hello", ErrBadToken.Error()},
		{"bad base64", "wrn1_!!!", ErrBadToken.Error()},
		{"cut", valid.String()[:20], ErrBadToken.Error()},
		{"ftp url", Token{URL: "ftp://x", Secret: valid.Secret}.String(), `token: coordinator URL "ftp://x" must start with https://`},
		{"credentials in url", Token{URL: "https://u:p@x", Secret: valid.Secret}.String(), `token: coordinator URL "https://u:p@x" must not contain credentials`},
		{"path", Token{URL: "https://x/api", Secret: valid.Secret}.String(), `token: coordinator URL "https://x/api" must be only scheme://host:port`},
		{"bad pin", Token{URL: valid.URL, Pin: "xyz", Secret: valid.Secret}.String(), "token: certificate pin is not a SHA-256 in hex"},
		{"short secret", Token{URL: valid.URL, Secret: "abc"}.String(), "token: secret is too short"},
	}
	for _, tt := range tests {
		_, err := ParseToken(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: ParseToken error = %v, want %s", tt.name, err, tt.want)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"office", "a", "laptop-2", strings.Repeat("x", MaxNameLen)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Office", "-a", "a-", "a_b", "a b", strings.Repeat("x", MaxNameLen+1), "ü"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) accepted", bad)
		}
	}
}

func TestKey(t *testing.T) {
	var priv Key
	priv[0] = 1
	pub := priv.PublicKey()
	k, err := ParseKey(pub.String())
	if err != nil || k != pub {
		t.Errorf("ParseKey(String()) = %v, %v", k, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("A", 43) + "=="} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

// FuzzParseToken: parsing never panics, and what parses re-encodes to a
// token that parses to the same value.
func FuzzParseToken(f *testing.F) {
	f.Add(Token{URL: "https://198.51.100.10:8443", Pin: strings.Repeat("ab", 32), Secret: "0123456789abcdef0123"}.String())
	f.Add("wrn1_e30")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("re-parse of %q: %+v, %v", s, again, err)
		}
	})
}

func TestRuleName(t *testing.T) {
	for i, want := range map[int]string{1: "rule 1", 12: "rule 12", SSHRuleBase - 1: "rule 999999", SSHRuleBase + 1: "ssh rule 1", SSHRuleBase + 30: "ssh rule 30"} {
		if got := RuleName(i); got != want {
			t.Errorf("RuleName(%d) = %q, want %q", i, got, want)
		}
	}
}
