package coordtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/warrennet/warren/overlay/wire"
)

// Faults is an http.Handler wrapper that makes the real coordinator
// misbehave the way networks and coordinators do, for tests of the node
// side: answers that fail, control streams that end cleanly or are cut
// mid-body, streams that fall silent or carry lines no coordinator sends.
// The coordinator's own rules stay its own: Faults never answers a request
// by itself except with an injected failure.
//
// Pass its Wrap as Options.Wrap. Its methods are safe for concurrent use.
type Faults struct {
	mu sync.Mutex
	// Guarded by mu:
	fail     map[string][]failure // by "METHOD /path", oldest first
	streams  map[*faultStream]struct{}
	connects map[string]int // streams answered 200, by bearer credential
	requests map[string]int // by "METHOD /path", failed ones too
	silent   bool
	rewrite  func(line []byte) []byte
}

type failure struct {
	status int
	err    wire.Error
}

// faultStream is one control stream passing through Faults.
type faultStream struct {
	cred   string
	cancel context.CancelFunc // ends the request as the coordinator sees it

	// Guarded by Faults.mu:
	open  bool // the 200 answer went out
	ended bool // DropStreams or CutStreams ended it
	cut   bool // end it with a reset, not a clean end of body

	// wmu serialises writes to w: the coordinator's lines and injected
	// ones never interleave. pending holds a line not yet complete; done
	// is set once the handler returned, after which w must not be used.
	wmu     sync.Mutex
	w       http.ResponseWriter
	pending []byte
	done    bool
}

// NewFaults returns a Faults that injects nothing until told to.
func NewFaults() *Faults {
	return &Faults{
		fail:     map[string][]failure{},
		streams:  map[*faultStream]struct{}{},
		connects: map[string]int{},
		requests: map[string]int{},
	}
}

// FailNext makes the next n requests for method and path (without query)
// answer status with body e instead of reaching the coordinator.
func (f *Faults) FailNext(method, path string, n, status int, e wire.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.fail[method+" "+path] = append(f.fail[method+" "+path], failure{status, e})
	}
}

// DropStreams ends every open control stream as a coordinator restart
// would: the coordinator stops serving it and the body ends cleanly. It
// returns how many it ended.
func (f *Faults) DropStreams() int { return f.endStreams(false) }

// CutStreams ends every open control stream mid-body, as a broken
// connection would: an HTTP/1.1 connection is closed without the end of
// the body, an HTTP/2 stream is reset. It returns how many it ended.
func (f *Faults) CutStreams() int { return f.endStreams(true) }

func (f *Faults) endStreams(cut bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for st := range f.streams {
		if st.open && !st.ended {
			st.ended, st.cut = true, cut
			st.cancel()
			n++
		}
	}
	return n
}

// Silence stops (true) or resumes (false) every line the coordinator
// writes on control streams, pings and netmaps alike, while the streams
// stay open. What it writes meanwhile is lost, as behind a middlebox that
// black-holes one direction.
func (f *Faults) Silence(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.silent = on
}

// Rewrite passes every line the coordinator writes on control streams
// (without its newline) through fn, which returns the line to send
// instead, or nil to drop it. A nil fn sends lines as they are.
func (f *Faults) Rewrite(fn func(line []byte) []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rewrite = fn
}

// Inject writes m, encoded as one JSON line, on every open control stream
// of the node with this credential, between the coordinator's own lines,
// and returns on how many it did. m may be any value: tests send messages
// no coordinator sends.
func (f *Faults) Inject(credential string, m any) (int, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	b = append(b, '\n')
	f.mu.Lock()
	var targets []*faultStream
	for st := range f.streams {
		if st.cred == credential && st.open && !st.ended {
			targets = append(targets, st)
		}
	}
	f.mu.Unlock()
	n := 0
	for _, st := range targets {
		st.wmu.Lock()
		if !st.done {
			_, err := st.w.Write(b)
			if err == nil {
				err = http.NewResponseController(st.w).Flush()
			}
			if err == nil {
				n++
			}
		}
		st.wmu.Unlock()
	}
	return n, nil
}

// Connects returns how many control streams the coordinator has accepted
// (answered 200) for the node with this credential.
func (f *Faults) Connects(credential string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connects[credential]
}

// Requests returns how many requests for method and path (without query)
// arrived, the ones FailNext answered included.
func (f *Faults) Requests(method, path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[method+" "+path]
}

// Wrap returns h with the faults injected.
func (f *Faults) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream := r.Method == http.MethodPost && r.URL.Path == wire.PathStream
		if fl, ok := f.takeFailure(r); ok {
			if stream {
				// As the coordinator does: an HTTP/1.1 answer that does
				// not wait for the request body, which never ends.
				_ = http.NewResponseController(w).EnableFullDuplex()
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(fl.status)
			_ = json.NewEncoder(w).Encode(fl.err)
			return
		}
		if !stream {
			h.ServeHTTP(w, r)
			return
		}
		f.serveStream(h, w, r)
	})
}

func (f *Faults) takeFailure(r *http.Request) (failure, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := r.Method + " " + r.URL.Path
	f.requests[k]++
	q := f.fail[k]
	if len(q) == 0 {
		return failure{}, false
	}
	if len(q) == 1 {
		delete(f.fail, k)
	} else {
		f.fail[k] = q[1:]
	}
	return q[0], true
}

// serveStream runs the coordinator's stream handler with a context Faults
// can end and a writer it can silence, rewrite and write into.
func (f *Faults) serveStream(h http.Handler, w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	cred, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	st := &faultStream{cred: cred, cancel: cancel, w: w}
	f.mu.Lock()
	f.streams[st] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.streams, st)
		f.mu.Unlock()
	}()
	h.ServeHTTP(&streamWriter{f: f, st: st}, r.WithContext(ctx))
	st.wmu.Lock()
	st.done = true
	st.wmu.Unlock()
	f.mu.Lock()
	cut := st.cut
	f.mu.Unlock()
	if cut {
		// net/http closes the connection (HTTP/1.1) or resets the stream
		// (HTTP/2) without ending the body.
		panic(http.ErrAbortHandler)
	}
}

// streamWriter is the coordinator's view of a control stream's answer.
// http.ResponseController reaches the real writer through Unwrap, for
// full duplex and deadlines.
type streamWriter struct {
	f      *Faults
	st     *faultStream
	header bool // WriteHeader was called; only the handler's goroutine
}

func (sw *streamWriter) Header() http.Header { return sw.st.w.Header() }

func (sw *streamWriter) WriteHeader(code int) {
	sw.header = true
	if code == http.StatusOK {
		sw.f.mu.Lock()
		sw.st.open = true
		sw.f.connects[sw.st.cred]++
		sw.f.mu.Unlock()
	}
	sw.st.w.WriteHeader(code)
}

// Write passes each complete line through the silence and rewrite faults.
func (sw *streamWriter) Write(p []byte) (int, error) {
	if !sw.header {
		sw.WriteHeader(http.StatusOK)
	}
	sw.f.mu.Lock()
	silent, rewrite := sw.f.silent, sw.f.rewrite
	sw.f.mu.Unlock()
	st := sw.st
	st.wmu.Lock()
	defer st.wmu.Unlock()
	st.pending = append(st.pending, p...)
	for {
		i := bytes.IndexByte(st.pending, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := st.pending[:i]
		st.pending = st.pending[i+1:]
		if silent {
			continue
		}
		if rewrite != nil {
			if line = rewrite(bytes.Clone(line)); line == nil {
				continue
			}
		}
		if _, err := st.w.Write(append(bytes.Clone(line), '\n')); err != nil {
			return 0, err
		}
	}
}

// FlushError flushes the real writer, between injected lines.
func (sw *streamWriter) FlushError() error {
	sw.st.wmu.Lock()
	defer sw.st.wmu.Unlock()
	return http.NewResponseController(sw.st.w).Flush()
}

func (sw *streamWriter) Unwrap() http.ResponseWriter { return sw.st.w }
