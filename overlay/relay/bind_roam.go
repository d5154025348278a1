package relay

// NetworkChanged tells the Bind that the host's network changed: an
// address, a link or a route came or went, or the process was frozen
// (a suspend). Where its datagrams leave from, and so where the relay and
// its peers see it, may be different now, which nothing on the wire would
// say until the next HELLO (KeepaliveInterval) or until its direct paths
// time out. So the Bind, if open:
//
//   - sends a HELLO at once, even within a second of the last one, and
//     holds what it relays until the relay acknowledges that HELLO (as it
//     does after Open): the relay would drop it, and answer "not
//     registered", while it still knows the node at its old address;
//   - doubts every direct path and PINGs it: Send uses the relay too until
//     the path answers, and the path goes if it does not within
//     probeTimeout; peers in use without a path are CALLed again at once,
//     with this node's new candidates. (If the relay's answer shows a new
//     public address, every path goes at once: see onAck.)
//
// The socket itself stays: it is bound to the unspecified address, so no
// address it was bound to can go away, and the kernel picks the new
// source address for each datagram. Keeping its port keeps the tokens
// peers know. why is logged.
func (b *Bind) NetworkChanged(why string) {
	s := b.live.Load()
	if s == nil {
		return
	}
	b.log.Info("relay bind: the network changed; registering again and checking direct paths", "why", why)
	b.reregister(s, why)
	if s.disco != nil {
		s.disco.recheck(why)
	}
}

// reregister sends a HELLO on s at once and holds what Send relays until
// the relay acknowledges it.
func (b *Bind) reregister(s *socket, why string) {
	b.log.Debug("relay bind: registering again", "why", why)
	// Only an ACK of a HELLO sent from now on confirms the registration:
	// its timestamp is above every one used so far.
	s.confirmAfter.Store(b.lastTS.Load() + 1)
	s.urgent.Store(true)
	s.poke()
}
