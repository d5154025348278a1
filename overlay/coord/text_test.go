package coord

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
)

// TestControlCharactersRefused: every name and free text an admin or a
// node sends is refused with an invalid error when it holds a control or
// format character, and the refused change changes nothing.
func TestControlCharactersRefused(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// With no connector enrolled, the error once suggested a command
	// naming the connector as given, raw.
	if _, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "10.2.0.0/16", Connector: "x\x1b[2J"}); err == nil || wire.ValidateText("error", err.Error(), 1000) != nil {
		t.Errorf("route to a connector named with ESC, none enrolled: err = %q, want a printable error", err)
	}
	h.enroll(wire.RoleConnector, "office")
	if _, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "10.1.0.0/16", Connector: "office", Comment: "lab"}); err != nil {
		t.Fatal(err)
	}
	unused := h.token(wire.RoleClient, "laptop", false, 0)
	state := func() string {
		b, err := json.Marshal(struct {
			E wire.Export
			P wire.PolicyDocument
		}{h.c.Export(), h.c.Policy()})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name string
		do   func() error
	}{
		{"new route's comment", func() error {
			_, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "10.2.0.0/16", Connector: "office", Comment: "\x1b[31mred"})
			return err
		}},
		{"route comment update", func() error {
			_, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "10.1.0.0/16", Connector: "office", Comment: "lab\u202e"})
			return err
		}},
		{"route comment with a newline", func() error {
			_, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "10.2.0.0/16", Connector: "office", Comment: "a\n10.9.0.0/8  evil"})
			return err
		}},
		{"route's connector name", func() error {
			_, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "10.2.0.0/16", Connector: "off\x1b[2Jice"})
			return err
		}},
		{"host comment", func() error {
			_, err := h.c.AddHost(ctx, wire.AddHostRequest{Name: "db", Address: "10.1.0.5", Comment: "x\u009b2J"})
			return err
		}},
		{"host name", func() error {
			_, err := h.c.AddHost(ctx, wire.AddHostRequest{Name: "db\x1b", Address: "10.1.0.5"})
			return err
		}},
		{"split entry comment", func() error {
			_, err := h.c.AddSplitEntry(ctx, wire.SplitEntryRequest{Prefix: "10.8.0.0/16", Comment: "zero\u200bwidth"})
			return err
		}},
		{"token name", func() error {
			_, err := h.c.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "pc\x07"})
			return err
		}},
		{"token user", func() error {
			_, err := h.c.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "pc", User: "al\u2066ice@example.com"})
			return err
		}},
		{"enroll hostname", func() error {
			_, err := h.c.Enroll(ctx, unused, wire.EnrollRequest{PublicKey: wire.Key{9, 31: 1}, Hostname: "pc\x1b]0;pwned\x07"})
			return err
		}},
		{"policy document comment", func() error {
			_, err := h.c.SetPolicy(ctx, wire.SetPolicyRequest{Document: "{\n  // \x1b[2J\n  \"rules\": [],\n}", DenyAll: true})
			return err
		}},
		{"policy user, JSON-escaped", func() error {
			_, err := h.c.SetPolicy(ctx, wire.SetPolicyRequest{Document: `{"rules": [{"from": ["user:al\u202eice@example.com"], "to": ["10.1.0.0/16:22"]}]}`})
			return err
		}},
	}
	for _, tt := range tests {
		before := state()
		err := tt.do()
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeInvalid {
			t.Errorf("%s: err = %v, want an invalid error", tt.name, err)
			continue
		}
		if verr := wire.ValidateText("error", we.Message, 1000); verr != nil {
			t.Errorf("%s: error %q is not one printable line: %v", tt.name, we.Message, verr)
		}
		if after := state(); after != before {
			t.Errorf("%s: refused, but the state changed:\nbefore %s\nafter  %s", tt.name, before, after)
		}
	}
	// The token the refused enrollment presented is still unused.
	if _, err := h.c.Enroll(ctx, unused, wire.EnrollRequest{PublicKey: wire.Key{9, 31: 1}, Hostname: "pc"}); err != nil {
		t.Errorf("enrolling after a refused hostname: %v", err)
	}
}
