package coordclienttest

import (
	"bufio"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// defaultSplit is the split policy of a fake no admin has edited.
func defaultSplit() wire.SplitPolicy {
	return wire.SplitPolicy{Mode: wire.SplitExclude, Include: []wire.SplitEntry{}, Exclude: []wire.SplitEntry{}}
}

// netMapLocked builds the named node's netmap: a client sees every
// connector, a connector every client.
func (s *Server) netMapLocked(name string) *wire.NetMap {
	self := s.nodes[name]
	nm := &wire.NetMap{Version: s.version, Self: self.Node, Peers: []wire.Peer{}, Routes: s.routeListLocked(), Split: defaultSplit()}
	if self.Role == wire.RoleClient {
		nm.Policy = s.policy
	}
	for _, n := range s.nodes {
		if n.Name == name || n.Role == self.Role {
			continue
		}
		p := wire.Peer{Node: n.Node, Online: s.onlineLocked(n.Name)}
		for _, rt := range nm.Routes {
			if rt.Connector == n.Name {
				p.Prefixes = append(p.Prefixes, rt.Prefix)
			}
		}
		nm.Peers = append(nm.Peers, p)
	}
	slices.SortFunc(nm.Peers, func(a, b wire.Peer) int { return strings.Compare(a.Name, b.Name) })
	return nm
}

// handleStream serves one node's control stream: a netmap first and on
// every change, a ping every heartbeat interval, acks recorded. It ends
// when the node is removed, the stream is dropped, the node falls silent,
// the client goes away or the server closes.
//
// Full duplex is enabled before anything is written, errors included: an
// HTTP/1.1 handler that answers without it has net/http drain the request
// body first, which a streaming client never ends. (coordclient sends
// "Connection: close", which makes net/http skip the drain, but other
// clients may not.) Without full duplex the 200 path could not read acks
// at all.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex() // HTTP/2 is full duplex anyway and says so
	cred := bearer(r)
	s.mu.Lock()
	var name string
	for _, n := range s.nodes {
		if cred != "" && n.credential == cred {
			name = n.Name
		}
	}
	if name == "" {
		s.mu.Unlock()
		writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "unknown node credential")
		return
	}
	others := s.changedLocked() // peers see this node come online
	st := &stream{node: name, changed: make(chan struct{}, 1), extra: make(chan []byte, 64), kill: make(chan struct{})}
	s.streams[st] = struct{}{}
	s.nodes[name].connects++
	s.mu.Unlock()
	notify(others)
	defer func() {
		s.mu.Lock()
		delete(s.streams, st)
		chs := s.changedLocked()
		s.mu.Unlock()
		notify(chs)
	}()

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}

	// The reader may outlive this handler: a body read returns only once
	// the connection or HTTP/2 stream is torn down. Close waits for it.
	var lastRecv atomic.Int64
	lastRecv.Store(time.Now().UnixNano())
	readDone := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(readDone)
		s.readStream(name, r, &lastRecv)
	}()

	ping := time.NewTicker(s.cfg.heartbeatInterval)
	defer ping.Stop()
	watchdog := time.NewTicker(s.cfg.heartbeatTimeout / 4)
	defer watchdog.Stop()
	dirty := true // a netmap is due
	for {
		s.mu.Lock()
		silent := s.silent
		var nm *wire.NetMap
		if dirty && !silent && s.nodes[name] != nil {
			nm = s.netMapLocked(name)
			s.nodes[name].sent = nm.Version
			dirty = false
		}
		s.mu.Unlock()
		if nm != nil {
			if writeMsg(w, rc, wire.StreamMessage{Type: wire.MsgNetMap, NetMap: nm}) != nil {
				return
			}
		}
		select {
		case <-st.changed:
			dirty = true
		case <-ping.C:
			if !silent && writeMsg(w, rc, wire.StreamMessage{Type: wire.MsgPing}) != nil {
				return
			}
		case <-watchdog.C:
			if time.Since(time.Unix(0, lastRecv.Load())) > s.cfg.heartbeatTimeout {
				return
			}
		case line := <-st.extra:
			if writeLine(w, rc, line) != nil {
				return
			}
		case <-st.kill:
			return
		case <-readDone:
			return
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		}
	}
}

func writeMsg(w http.ResponseWriter, rc *http.ResponseController, m wire.StreamMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return writeLine(w, rc, b)
}

func writeLine(w http.ResponseWriter, rc *http.ResponseController, b []byte) error {
	if _, err := w.Write(append(b, '\n')); err != nil {
		return err
	}
	return rc.Flush()
}

// readStream records the node's acks and pings until the body ends.
func (s *Server) readStream(name string, r *http.Request, lastRecv *atomic.Int64) {
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lastRecv.Store(time.Now().UnixNano())
		var m wire.StreamMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.Validate() != nil {
			return
		}
		now := time.Now().UTC()
		s.mu.Lock()
		if n := s.nodes[name]; n != nil {
			n.LastSeen = &now
			if m.Type == wire.MsgAck {
				n.AppliedVersion = m.Version
			}
		}
		s.mu.Unlock()
	}
}
