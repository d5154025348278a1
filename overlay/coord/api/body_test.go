package api_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// hideLength hides a reader's length from net/http, so that the body is
// sent without a Content-Length.
type hideLength struct{ io.Reader }

// TestOversizeBodies413: a body over the limit is answered 413 with the
// usual JSON error, whether its Content-Length declares it (refused
// before reading) or not.
func TestOversizeBodies413(t *testing.T) {
	s := startLimited(t, testLimits())
	ctx := context.Background()
	tok, err := s.co.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "office", Reusable: true})
	if err != nil {
		t.Fatal(err)
	}
	enrollTok, _ := wire.ParseToken(tok.Token)
	er, err := s.co.Enroll(ctx, enrollTok.Secret, wire.EnrollRequest{PublicKey: wire.Key{1}})
	if err != nil {
		t.Fatal(err)
	}
	big := func(n int) []byte { return []byte(`{"comment":"` + strings.Repeat("x", n) + `"}`) }
	tests := []struct {
		name, path, secret string
		body               io.Reader
	}{
		{"route, declared", wire.PathRoutes, s.admin, bytes.NewReader(big(2 << 20))},
		{"route, chunked", wire.PathRoutes, s.admin, hideLength{bytes.NewReader(big(2 << 20))}},
		{"enroll, chunked", wire.PathEnroll, enrollTok.Secret, hideLength{bytes.NewReader(big(2 << 20))}},
		{"flow report, declared", wire.PathFlowReport, er.Credential, bytes.NewReader(big(5 << 20))},
		{"flow report, chunked", wire.PathFlowReport, er.Credential, hideLength{bytes.NewReader(big(5 << 20))}},
	}
	for _, h2 := range []bool{true, false} {
		hc := client(t, "127.0.0.1", h2)
		for _, tt := range tests {
			if seeker, ok := tt.body.(io.Seeker); ok {
				seeker.Seek(0, io.SeekStart)
			}
			if h, ok := tt.body.(hideLength); ok {
				h.Reader.(io.Seeker).Seek(0, io.SeekStart)
			}
			req, _ := http.NewRequest(http.MethodPost, s.url+tt.path, tt.body)
			req.Header.Set("Authorization", "Bearer "+tt.secret)
			resp, err := hc.Do(req)
			if err != nil {
				t.Errorf("h2=%v %s: %v, want a 413 answer", h2, tt.name, err)
				continue
			}
			expect413(t, resp, fmt.Sprintf("h2=%v %s", h2, tt.name))
		}
		// A declared length over the limit is refused before anything
		// is read: the body need never come.
		pr, pw := io.Pipe()
		// Unblock an HTTP/1.1 transport stuck writing the body, should
		// the server wait for it.
		stop := time.AfterFunc(3*time.Second, func() { pw.CloseWithError(errors.New("no answer within 3s")) })
		defer stop.Stop()
		req, _ := http.NewRequest(http.MethodPost, s.url+wire.PathRoutes, pr)
		req.ContentLength = 2 << 20
		req.Header.Set("Authorization", "Bearer "+s.admin)
		resp, err := hc.Do(req)
		pw.Close()
		if err != nil {
			t.Errorf("h2=%v declared length, no body: %v, want a 413 answer at once", h2, err)
			continue
		}
		expect413(t, resp, fmt.Sprintf("h2=%v declared length, no body", h2))
	}
}

func expect413(t *testing.T, resp *http.Response, what string) {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var we wire.Error
	if resp.StatusCode != http.StatusRequestEntityTooLarge || json.Unmarshal(b, &we) != nil || we.Code != wire.CodeInvalid || we.Message == "" {
		t.Errorf("%s: %d %s, want 413 with a JSON error", what, resp.StatusCode, b)
	}
}

// TestEnrollRefusesTokenBeforeBody: an enrollment whose token cannot
// enroll is answered at once, without waiting for a body that never
// comes.
func TestEnrollRefusesTokenBeforeBody(t *testing.T) {
	s := startLimited(t, testLimits())
	ctx := context.Background()
	token := func(req wire.CreateTokenRequest) string {
		t.Helper()
		resp, err := s.co.CreateToken(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := wire.ParseToken(resp.Token)
		return tok.Secret
	}
	used := token(wire.CreateTokenRequest{Role: wire.RoleClient, Name: "used"})
	if _, err := s.co.Enroll(ctx, used, wire.EnrollRequest{PublicKey: wire.Key{2}}); err != nil {
		t.Fatal(err)
	}
	expired := token(wire.CreateTokenRequest{Role: wire.RoleClient, Name: "expired", ExpiresIn: wire.Duration(time.Millisecond)})
	revoked := token(wire.CreateTokenRequest{Role: wire.RoleClient, Name: "revoked"})
	for _, ti := range s.co.Tokens() {
		if ti.Name == "revoked" {
			if err := s.co.RevokeToken(ctx, ti.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(5 * time.Millisecond) // past "expired"'s expiry
	tests := []struct {
		name, secret string
		status       int
		code         string
	}{
		{"unknown", "not-a-token", http.StatusUnauthorized, wire.CodeUnauthorized},
		{"none", "", http.StatusUnauthorized, wire.CodeUnauthorized},
		{"used", used, http.StatusForbidden, wire.CodeTokenUsed},
		{"expired", expired, http.StatusForbidden, wire.CodeTokenExpired},
		{"revoked", revoked, http.StatusForbidden, wire.CodeTokenRevoked},
		{"admin", s.admin, http.StatusBadRequest, wire.CodeInvalid},
	}
	hc := client(t, "127.0.0.1", true)
	hc.Timeout = 3 * time.Second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			defer pw.Close() // the body never comes
			req, _ := http.NewRequest(http.MethodPost, s.url+wire.PathEnroll, pr)
			req.ContentLength = 1 << 20
			if tt.secret != "" {
				req.Header.Set("Authorization", "Bearer "+tt.secret)
			}
			start := time.Now()
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%v after %v, want an answer before the body", err, time.Since(start).Round(time.Millisecond))
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var we wire.Error
			json.Unmarshal(b, &we)
			if resp.StatusCode != tt.status || we.Code != tt.code {
				t.Errorf("got %d %s, want %d with code %q", resp.StatusCode, b, tt.status, tt.code)
			}
		})
	}
}

// A client's credential on the flow report, which only connectors may
// send, is refused before the body is read: a client cannot make the
// coordinator read 4 MiB it will throw away.
func TestFlowReportRefusesClientBeforeBody(t *testing.T) {
	s := startLimited(t, testLimits())
	ctx := context.Background()
	resp, err := s.co.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := wire.ParseToken(resp.Token)
	er, err := s.co.Enroll(ctx, tok.Secret, wire.EnrollRequest{PublicKey: wire.Key{3}})
	if err != nil {
		t.Fatal(err)
	}
	hc := client(t, "127.0.0.1", true)
	hc.Timeout = 3 * time.Second
	pr, pw := io.Pipe()
	defer pw.Close() // the body never comes
	req, _ := http.NewRequest(http.MethodPost, s.url+wire.PathFlowReport, pr)
	req.ContentLength = 1 << 20
	req.Header.Set("Authorization", "Bearer "+er.Credential)
	start := time.Now()
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%v after %v, want an answer before the body", err, time.Since(start).Round(time.Millisecond))
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var we wire.Error
	json.Unmarshal(b, &we)
	if res.StatusCode != http.StatusUnauthorized || we.Code != wire.CodeUnauthorized {
		t.Errorf("got %d %s, want 401 unauthorized", res.StatusCode, b)
	}
}

// HTTP/2 framing, just enough to misbehave as a client: RFC 9113.
const (
	h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

	frameData, frameHeaders, frameRST, frameSettings, framePing, frameGoAway = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
	flagEndStream, flagAck, flagEndHeaders                                   = 0x1, 0x1, 0x4

	settingMaxConcurrentStreams   = 0x3
	errProtocol, errRefusedStream = 0x1, 0x7
)

type h2Frame struct {
	typ, flags byte
	stream     uint32
	payload    []byte
}

func writeFrame(w io.Writer, f h2Frame) error {
	h := make([]byte, 9, 9+len(f.payload))
	h[0], h[1], h[2] = byte(len(f.payload)>>16), byte(len(f.payload)>>8), byte(len(f.payload))
	h[3], h[4] = f.typ, f.flags
	binary.BigEndian.PutUint32(h[5:], f.stream)
	_, err := w.Write(append(h, f.payload...))
	return err
}

func readFrame(r io.Reader) (h2Frame, error) {
	var h [9]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return h2Frame{}, err
	}
	f := h2Frame{typ: h[3], flags: h[4], stream: binary.BigEndian.Uint32(h[5:]) & 0x7fffffff}
	f.payload = make([]byte, int(h[0])<<16|int(h[1])<<8|int(h[2]))
	_, err := io.ReadFull(r, f.payload)
	return f, err
}

// hpackLiteral encodes header fields as literals without indexing, new
// names, no Huffman (RFC 7541 6.2.2); every length is under 127.
func hpackLiteral(fields ...[2]string) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, 0x00, byte(len(f[0])))
		b = append(b, f[0]...)
		b = append(b, byte(len(f[1])))
		b = append(b, f[1]...)
	}
	return b
}

// TestHTTP2StreamCap: the server advertises its cap on concurrent
// streams and refuses streams past it; stalled requests time out and free
// the connection for the next.
func TestHTTP2StreamCap(t *testing.T) {
	l := testLimits()
	l.H2MaxConcurrentStreams = 4
	l.ReadTimeout = 500 * time.Millisecond
	s := startLimited(t, l)
	resp, err := s.co.CreateToken(context.Background(), wire.CreateTokenRequest{Role: wire.RoleClient, Name: "x", Reusable: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := wire.ParseToken(resp.Token)

	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) // loopback test server
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, h2Preface); err != nil {
		t.Fatal(err)
	}
	if err := writeFrame(c, h2Frame{typ: frameSettings}); err != nil {
		t.Fatal(err)
	}
	f, err := readFrame(c)
	if err != nil || f.typ != frameSettings {
		t.Fatalf("first frame %+v (%v), want SETTINGS", f, err)
	}
	advertised := uint32(0)
	for p := f.payload; len(p) >= 6; p = p[6:] {
		if binary.BigEndian.Uint16(p) == settingMaxConcurrentStreams {
			advertised = binary.BigEndian.Uint32(p[2:])
		}
	}
	if advertised != uint32(l.H2MaxConcurrentStreams) {
		t.Errorf("server's SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", advertised, l.H2MaxConcurrentStreams)
	}
	if err := writeFrame(c, h2Frame{typ: frameSettings, flags: flagAck}); err != nil {
		t.Fatal(err)
	}
	open := func(id uint32, method, path string, endStream bool) {
		t.Helper()
		flags := byte(flagEndHeaders)
		if endStream {
			flags |= flagEndStream
		}
		block := hpackLiteral([2]string{":method", method}, [2]string{":scheme", "https"}, [2]string{":authority", "x"},
			[2]string{":path", path}, [2]string{"authorization", "Bearer " + tok.Secret}, [2]string{"content-type", "application/json"})
		if err := writeFrame(c, h2Frame{typ: frameHeaders, flags: flags, stream: id, payload: block}); err != nil {
			t.Fatal(err)
		}
	}
	// Stalled enrollments, well past the cap: headers, then a body that
	// never comes.
	const stalled = 40
	for i := range stalled {
		open(uint32(1+2*i), http.MethodPost, wire.PathEnroll, false)
	}
	wantRefused := stalled - l.H2MaxConcurrentStreams
	refused, timedOut := 0, 0
	health := uint32(1 + 2*stalled)
	start := time.Now()
	for {
		f, err := readFrame(c)
		if err != nil {
			t.Fatalf("reading frames: %v (%d streams refused)", err, refused)
		}
		inCap := f.stream != 0 && f.stream <= uint32(2*l.H2MaxConcurrentStreams)
		switch f.typ {
		case frameRST:
			code := binary.BigEndian.Uint32(f.payload)
			switch {
			case inCap:
				timedOut++
			case code == errRefusedStream || code == errProtocol:
				refused++
			}
		case frameData:
			if inCap && f.flags&flagEndStream != 0 {
				timedOut++
			}
		case frameHeaders:
			if inCap && f.flags&flagEndStream != 0 {
				timedOut++
			}
			if f.stream != health {
				break
			}
			// :status 200 is entry 8 of the static table, sent indexed.
			if len(f.payload) == 0 || f.payload[0] != 0x88 {
				t.Errorf("health on the same connection: header block %x, want :status 200 (0x88) first", f.payload)
			}
			if d := time.Since(start); d > l.ReadTimeout+2*time.Second {
				t.Errorf("health answered %v after the flood, want within the read time-out %v (+2s)", d, l.ReadTimeout)
			}
			return
		case framePing:
			if f.flags&flagAck == 0 {
				writeFrame(c, h2Frame{typ: framePing, flags: flagAck, payload: f.payload})
			}
		case frameGoAway:
			t.Fatalf("server went away: %x (%d streams refused, want %d)", f.payload, refused, wantRefused)
		}
		// Once the stalled streams within the cap have timed out, the
		// connection serves the next request.
		if timedOut == l.H2MaxConcurrentStreams && refused == wantRefused {
			timedOut++ // once
			open(health, http.MethodGet, wire.PathHealth, true)
		}
	}
}
