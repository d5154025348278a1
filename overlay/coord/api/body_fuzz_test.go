package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
)

// requestBodies makes a fresh value of every request body type the API
// decodes strictly.
var requestBodies = []func() any{
	func() any { return new(wire.EnrollRequest) },
	func() any { return new(wire.CreateTokenRequest) },
	func() any { return new(wire.AddRouteRequest) },
	func() any { return new(wire.AddHostRequest) },
	func() any { return new(wire.SetPolicyRequest) },
	func() any { return new(wire.SplitModeRequest) },
	func() any { return new(wire.SplitEntryRequest) },
}

// FuzzDecodeRequest feeds arbitrary bytes to the strict decoder of every
// request body type: no panics, nothing accepted with unknown fields or
// trailing data, what is accepted survives encoding and decoding again
// unchanged, and a body over the limit is always a *http.MaxBytesError.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","hostname":"x"}`,
		`{"role":"client","name":"laptop","reusable":true,"expires_in":"1h"}`,
		`{"prefix":"10.0.0.0/8","connector":"office","comment":"lan"}`,
		`{"name":"git","address":"10.0.0.5"}`,
		`{"document":"{}","dry_run":true}`,
		`{"mode":"include"}`,
		`{"prefix":"192.168.0.0/16","comment":"home"}`,
		`{} {}`, `{}]`, `{"unknown":1}`, `[]`, `null`, ``,
	} {
		for k := range requestBodies {
			f.Add(byte(k), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		mk := requestBodies[int(kind)%len(requestBodies)]
		v := mk()
		err := decodeStrict(bytes.NewReader(data), v)
		if err == nil {
			b, merr := json.Marshal(v)
			if merr != nil {
				t.Fatalf("decoded %q into %T, which does not encode: %v", data, v, merr)
			}
			again := mk()
			if err := decodeStrict(bytes.NewReader(b), again); err != nil {
				t.Fatalf("%T encoded as %s does not decode again: %v", v, b, err)
			}
			b2, _ := json.Marshal(again)
			if !bytes.Equal(b, b2) {
				t.Fatalf("%T round trip: %s, then %s", v, b, b2)
			}
		}
		// Under a limit shorter than the body the decoder cannot reach
		// the end it must see, so it fails; and a body that decodes in
		// full fails as too large, never as anything else.
		if len(data) > 0 {
			lr := http.MaxBytesReader(httptest.NewRecorder(), nopCloser{bytes.NewReader(data)}, int64(len(data)-1))
			lerr := decodeStrict(lr, mk())
			var tooLarge *http.MaxBytesError
			switch {
			case lerr == nil:
				t.Fatalf("decoded %q within a %d-byte limit", data, len(data)-1)
			case err == nil && !errors.As(lerr, &tooLarge):
				t.Fatalf("%q over the limit: %v, want a *http.MaxBytesError", data, lerr)
			}
		}
	})
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// FuzzDecodeFlowReport: the lenient flow-report decoder never panics, and
// what it accepts encodes and decodes again unchanged.
func FuzzDecodeFlowReport(f *testing.F) {
	f.Add([]byte(`{"records":[{"id":"a","time":"2026-01-02T03:04:05Z","allowed":false,"proto":"tcp"}]}`))
	f.Add([]byte(`{"records":[],"newer_field":1}`))
	f.Add([]byte(`{"records":null} x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rep wire.FlowReport
		if err := decodeFlowReport(bytes.NewReader(data), &rep); err != nil {
			return
		}
		_ = rep.Validate()
		b, err := json.Marshal(rep)
		if err != nil {
			t.Fatalf("decoded %q, which does not encode: %v", data, err)
		}
		var again wire.FlowReport
		if err := decodeFlowReport(bytes.NewReader(b), &again); err != nil {
			t.Fatalf("encoded as %s, does not decode again: %v", b, err)
		}
		if b2, _ := json.Marshal(again); !bytes.Equal(b, b2) {
			t.Fatalf("round trip: %s, then %s", b, b2)
		}
	})
}

// FuzzNodeMessage: a node's stream messages, framed and decoded as the
// control stream does, never panic the reader or its validation.
func FuzzNodeMessage(f *testing.F) {
	f.Add([]byte(`{"type":"ack","version":3}` + "\n" + `{"type":"ping"}` + "\n"))
	f.Add([]byte(`{"type":"netmap","netmap":{}}` + "\n"))
	f.Add([]byte(`{"type":"future","x":[1,2]}` + "\n" + `not json` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newNodeReader(strings.NewReader(string(data)))
		for range 100 {
			m, err := c.Recv()
			if err != nil {
				return
			}
			_ = m.Validate()
		}
	})
}
