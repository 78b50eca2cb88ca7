// Package ice is Hayate's ICE-lite agent (RFC 8445 §2.5): a STUN Binding
// responder on pion/stun/v4 and the small per-connection state it needs.
//
// A lite agent never sends checks; it answers the peer's Binding requests
// (RFC 8445 §7.3) and learns the peer as a peer-reflexive candidate from
// their source address. A request is answered only when it carries USERNAME
// (our ufrag first), a valid MESSAGE-INTEGRITY keyed with our password and a
// valid FINGERPRINT; the answer carries XOR-MAPPED-ADDRESS (RFC 8489 §14.2),
// MESSAGE-INTEGRITY and FINGERPRINT. A request with USE-CANDIDATE nominates
// its source address (RFC 8445 §7.3.1.5); later nominations replace it, which
// covers network changes.
//
// The Responder runs synchronously in a media socket's receive loop and is
// not safe for concurrent use; each loop has its own. Agents are shared.
package ice

import (
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/pion/stun/v4"
)

// Agent is one connection's ICE state.
type Agent struct {
	LocalUfrag, LocalPwd string
	integrity            stun.MessageIntegrity
	remoteUfrag          atomic.Pointer[ufrags]
	selected             atomic.Pointer[netip.AddrPort]
}

// NewAgent returns an agent with our credentials (RFC 8445 §5.3: the ufrag
// needs 24 bits of randomness, the password 128).
func NewAgent(ufrag, pwd string) *Agent {
	return &Agent{LocalUfrag: ufrag, LocalPwd: pwd, integrity: stun.NewShortTermIntegrity(pwd)}
}

// ufrags are the peer's current ufrag and the one before it.
type ufrags struct{ cur, prev string }

// SetRemoteUfrag records the peer's ufrag from its answer. Requests that
// arrive before it (the browser starts checks as soon as it has our offer)
// are authenticated by our password alone. A new ufrag is an ICE restart
// by the peer; requests with the previous one stay valid until the peer
// has switched (as mediasoup's IceServer does).
func (a *Agent) SetRemoteUfrag(u string) {
	old := a.remoteUfrag.Load()
	if old != nil && old.cur == u {
		return
	}
	next := &ufrags{cur: u}
	if old != nil {
		next.prev = old.cur
	}
	a.remoteUfrag.Store(next)
}

// Selected returns the nominated address, if any.
func (a *Agent) Selected() (netip.AddrPort, bool) {
	p := a.selected.Load()
	if p == nil {
		return netip.AddrPort{}, false
	}
	return *p, true
}

// Outcome says what the Responder did with a packet.
type Outcome uint8

// Outcomes of Handle.
const (
	// Ignored: a STUN message that is not a Binding request (indications,
	// responses); nothing is sent.
	Ignored Outcome = iota
	// Malformed: not a valid STUN message, or no valid FINGERPRINT; dropped.
	Malformed
	// UnknownUfrag: USERNAME names no agent; dropped without answer, so an
	// unauthenticated sender cannot use us to reflect traffic.
	UnknownUfrag
	// BadRequest: a request lacking USERNAME, MESSAGE-INTEGRITY or PRIORITY,
	// or naming the wrong remote ufrag; answered with 400.
	BadRequest
	// Unauthorized: MESSAGE-INTEGRITY does not verify; answered with 401.
	Unauthorized
	// Answered: a valid request; answered with success.
	Answered
	// Nominated: a valid request with USE-CANDIDATE; answered with success
	// and its source is now the selected address.
	Nominated
)

// Lookup finds the agent owning a local ufrag; ufrag aliases the packet and
// must not be kept.
type Lookup func(ufrag []byte) *Agent

// Responder answers Binding requests. It reuses its buffers, so the slice
// Handle returns is valid until the next call.
type Responder struct {
	req  stun.Message
	resp stun.Message
	ip   [16]byte
}

// Handle processes one STUN datagram from a peer. It returns the agent the
// request authenticated to (nil unless Answered or Nominated), the response
// to send back to from (nil if none) and the outcome.
func (r *Responder) Handle(pkt []byte, from netip.AddrPort, lookup Lookup) (*Agent, []byte, Outcome) {
	r.req.Raw = append(r.req.Raw[:0], pkt...)
	if err := r.req.Decode(); err != nil {
		return nil, nil, Malformed
	}
	if r.req.Type != stun.BindingRequest {
		return nil, nil, Ignored
	}
	// RFC 8445 §7.2.2: connectivity checks carry FINGERPRINT.
	if err := stun.Fingerprint.Check(&r.req); err != nil {
		return nil, nil, Malformed
	}
	user, err := r.req.Get(stun.AttrUsername)
	if err != nil {
		return nil, r.fail(from, stun.CodeBadRequest), BadRequest
	}
	local, remote, ok := cutColon(user)
	if !ok {
		return nil, r.fail(from, stun.CodeBadRequest), BadRequest
	}
	agent := lookup(local)
	if agent == nil {
		return nil, nil, UnknownUfrag
	}
	// RFC 8445 §7.3: MESSAGE-INTEGRITY is keyed with our password; an
	// unauthenticated request gets 401 and creates no state.
	if err := agent.integrity.Check(&r.req); err != nil {
		return nil, r.fail(from, stun.CodeUnauthorized), Unauthorized
	}
	if !r.req.Contains(stun.AttrPriority) {
		return nil, r.failAuth(from, stun.CodeBadRequest, agent), BadRequest
	}
	if ru := agent.remoteUfrag.Load(); ru != nil && ru.cur != string(remote) && ru.prev != string(remote) {
		return nil, r.failAuth(from, stun.CodeBadRequest, agent), BadRequest
	}
	out := Answered
	if r.req.Contains(stun.AttrUseCandidate) {
		if cur := agent.selected.Load(); cur == nil || *cur != from {
			sel := from
			agent.selected.Store(&sel)
		}
		out = Nominated
	}
	return agent, r.success(from, agent), out
}

func cutColon(b []byte) (local, remote []byte, ok bool) {
	for i, c := range b {
		if c == ':' {
			return b[:i], b[i+1:], i > 0 && i < len(b)-1
		}
	}
	return nil, nil, false
}

func (r *Responder) start(t stun.MessageType) {
	r.resp.Reset()
	r.resp.Type = t
	r.resp.TransactionID = r.req.TransactionID
	r.resp.WriteHeader()
}

func (r *Responder) success(from netip.AddrPort, a *Agent) []byte {
	r.start(stun.BindingSuccess)
	ip := from.Addr().Unmap()
	var nip net.IP
	if ip.Is4() {
		v := ip.As4()
		copy(r.ip[:4], v[:])
		nip = net.IP(r.ip[:4])
	} else {
		v := ip.As16()
		copy(r.ip[:], v[:])
		nip = net.IP(r.ip[:])
	}
	// RFC 8489 §14.2: XOR-MAPPED-ADDRESS is the source of the request.
	_ = stun.XORMappedAddress{IP: nip, Port: int(from.Port())}.AddTo(&r.resp)
	_ = a.integrity.AddTo(&r.resp)
	_ = stun.Fingerprint.AddTo(&r.resp)
	return r.resp.Raw
}

// fail builds an error response without MESSAGE-INTEGRITY (we could not
// authenticate the request, RFC 8489 §9.1.3).
func (r *Responder) fail(_ netip.AddrPort, code stun.ErrorCode) []byte {
	r.start(stun.BindingError)
	_ = code.AddTo(&r.resp)
	_ = stun.Fingerprint.AddTo(&r.resp)
	return r.resp.Raw
}

// failAuth builds an error response to an authenticated request.
func (r *Responder) failAuth(_ netip.AddrPort, code stun.ErrorCode, a *Agent) []byte {
	r.start(stun.BindingError)
	_ = code.AddTo(&r.resp)
	_ = a.integrity.AddTo(&r.resp)
	_ = stun.Fingerprint.AddTo(&r.resp)
	return r.resp.Raw
}
