package coord

import (
	"context"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
)

func TestRelayAllowed(t *testing.T) {
	h := newHarness(t)
	office := h.enroll(wire.RoleConnector, "office").Node.PublicKey
	lab := h.enroll(wire.RoleConnector, "lab").Node.PublicKey
	laptop := h.enroll(wire.RoleClient, "laptop").Node.PublicKey
	phone := h.enroll(wire.RoleClient, "phone").Node.PublicKey
	stranger := wire.Key{9, 9, 9}
	tests := []struct {
		name     string
		src, dst wire.Key
		want     bool
	}{
		{"client to connector", laptop, office, true},
		{"connector to client", office, laptop, true},
		{"client to client", laptop, phone, false},
		{"connector to connector", office, lab, false},
		{"unknown source", stranger, office, false},
		{"unknown destination", laptop, stranger, false},
	}
	for _, tt := range tests {
		if got := h.c.RelayAllowed(tt.src, tt.dst); got != tt.want {
			t.Errorf("%s: RelayAllowed = %v, want %v", tt.name, got, tt.want)
		}
	}
	if err := h.c.RemoveNode(context.Background(), "laptop"); err != nil {
		t.Fatal(err)
	}
	if h.c.RelayAllowed(laptop, office) || h.c.RelayAllowed(office, laptop) {
		t.Error("removed node still allowed through the relay")
	}
}
