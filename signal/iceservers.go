package signal

// ICE servers of the offer (Sora: the offer's config, passed to the
// client's RTCPeerConnection; https://sora-doc.shiguredo.jp/TURN).

// ICEServer is one entry of config.iceServers (W3C RTCIceServer). Every
// entry carries username and credential: the C++ SDK reads both.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username"`
	Credential string   `json:"credential"`
}

// TURNPayout are the auth webhook's TURN payouts: turn_tcp_only and
// turn_tls_only keep only the TURN-TCP or TURN-TLS URLs (and force
// relaying), turn_fqdn and turn_tls_fqdn replace the host names.
type TURNPayout struct {
	TCPOnly, TLSOnly bool
	FQDN, TLSFQDN    string
}

// ICEServers gives each connection the ICE servers of its offer, with
// TURN credentials made for that connection, and revokes them when it
// ends.
type ICEServers interface {
	// Issue returns the offer's iceServers for a connection whose
	// transport has the local ICE ufrag ufrag.
	Issue(connectionID, ufrag string, p TURNPayout) []ICEServer
	// Revoke ends the connection's credentials; it may be called more
	// than once.
	Revoke(connectionID string)
}

// issueICEServers fills the connection's iceServers and policy.
func (c *Conn) issueICEServers() {
	h := c.hub
	c.iceServers = []ICEServer{}
	c.icePolicy = h.set.ICETransportPolicy
	if c.icePolicy == "" {
		c.icePolicy = "all"
	}
	if h.hooks.ICEServers == nil {
		return
	}
	ufrag, _ := c.tr.LocalCredentials()
	c.iceServers = h.hooks.ICEServers.Issue(c.id, ufrag, c.turnPayout)
	if c.turnPayout.TCPOnly || c.turnPayout.TLSOnly {
		// Sora's "TURN-TCP/TLS 利用強制": the client may use nothing else.
		c.icePolicy = "relay"
	}
}

// closeTransport closes the connection's media transport and revokes its
// TURN credentials.
func (c *Conn) closeTransport() {
	c.tr.Close()
	if c.hub.hooks.ICEServers != nil {
		c.hub.hooks.ICEServers.Revoke(c.id)
	}
}

// turnTransportType is Sora's turn_transport_type: "tcp" when the media
// goes over TCP (TURN-TCP, TURN-TLS or ICE-TCP), else "udp".
func (c *Conn) turnTransportType() string {
	if p := c.path.Load(); p != nil {
		switch *p {
		case "turn-tcp", "turn-tls", "tcp":
			return "tcp"
		}
	}
	return "udp"
}
