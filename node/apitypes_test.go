package node

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Strict types of the API's answers, written from Sora's documentation and
// Shiguredo's own clients of the API (sora-server-sdk-ts types/api,
// sora_exporter collector/sora_api.go and license.go). apiOK decodes an
// answer into one with unknown fields refused, so a renamed, retyped or
// undocumented field fails the test that reads it. Fields Hayate adds
// beyond Sora's are listed as such (README, "Sora compatibility: API
// targets").

// soraMode is ChangeMode's and GetMode's answer (API_MODE).
type soraMode struct {
	Mode string `json:"mode"`
}

// soraConnection is one entry of ListConnections and ListChannelConnections
// (sora-server-sdk-ts Connection; sora-labo-doc API.rst sample).
type soraConnection struct {
	ChannelID     string          `json:"channel_id"`
	SessionID     string          `json:"session_id"`
	ClientID      string          `json:"client_id"`
	BundleID      string          `json:"bundle_id"`
	ConnectionID  string          `json:"connection_id"`
	Role          string          `json:"role"`
	Multistream   bool            `json:"multistream"`
	Simulcast     bool            `json:"simulcast"`
	Spotlight     bool            `json:"spotlight"`
	Audio         soraMediaInfo   `json:"audio"`
	Video         soraMediaInfo   `json:"video"`
	CreatedTime   int64           `json:"created_time"`
	EventMetadata json.RawMessage `json:"event_metadata"`
}

// soraMediaInfo is a connection's audio or video: false when off, else
// {"codec_type": ...}.
type soraMediaInfo struct {
	On        bool
	CodecType string
}

func (m *soraMediaInfo) UnmarshalJSON(b []byte) error {
	if string(b) == "false" {
		*m = soraMediaInfo{}
		return nil
	}
	var v struct {
		CodecType string `json:"codec_type"`
	}
	if err := strictDecode(b, &v); err != nil {
		return err
	}
	*m = soraMediaInfo{On: true, CodecType: v.CodecType}
	return nil
}

// soraChannel is one entry of ListChannels (EXPERIMENTAL_API).
type soraChannel struct {
	ChannelID   string `json:"channel_id"`
	Multistream bool   `json:"multistream"`
	Spotlight   bool   `json:"spotlight"`
}

// The disconnect answers (API_SIGNALING; sora-server-sdk-ts signaling.d.ts).
type (
	soraDisconnectChannel struct {
		ChannelID string `json:"channel_id"`
	}
	soraDisconnectClient struct {
		ChannelID string `json:"channel_id"`
		ClientID  string `json:"client_id"`
	}
	soraDisconnectConnection struct {
		ChannelID    string `json:"channel_id"`
		ConnectionID string `json:"connection_id"`
	}
	soraDisconnectChannelByRole struct {
		ChannelID string `json:"channel_id"`
		Role      string `json:"role"`
	}
)

// soraPush is every Push target's answer: the message pushed (API_PUSH).
type soraPush struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// soraRequestKeyFrame is RequestKeyFrame's answer (API_CONNECTION).
type soraRequestKeyFrame struct {
	ChannelID    string `json:"channel_id"`
	ConnectionID string `json:"connection_id"`
}

// The simulcast answers echo the request (API_SIMULCAST).
type (
	soraRtpStream struct {
		ChannelID        string  `json:"channel_id"`
		RecvConnectionID string  `json:"recv_connection_id"`
		SendConnectionID *string `json:"send_connection_id"`
		Rid              *string `json:"rid"`
	}
	soraSimulcastRid struct {
		ChannelID            string  `json:"channel_id"`
		ReceiverConnectionID string  `json:"receiver_connection_id"`
		SenderConnectionID   *string `json:"sender_connection_id"`
		Rid                  *string `json:"rid"`
		Auto                 *bool   `json:"auto"`
	}
)

// soraLicense is GetLicense's answer (API_LICENSE; sora-server-sdk-ts
// license.d.ts; sora_exporter's soraLicenseInfo, max_nodes only in a
// cluster license).
type soraLicense struct {
	ExpiredAt      string `json:"expired_at"`
	MaxConnections int64  `json:"max_connections"`
	MaxNodes       *int64 `json:"max_nodes"`
	ProductName    string `json:"product_name"`
	SerialCode     string `json:"serial_code"`
	Type           string `json:"type"`
}

// soraSession is GetSession's answer and ListSessions' entry: the
// session.updated webhook's body (EXPERIMENTAL_API_SESSION; the session
// webhooks' fields in sora-server-sdk-ts session_webhook.d.ts).
type soraSession struct {
	Type                 string          `json:"type"`
	ID                   string          `json:"id"`
	Timestamp            string          `json:"timestamp"`
	Version              string          `json:"version"`
	Label                string          `json:"label"`
	NodeName             string          `json:"node_name"`
	ExternalSignalingURL *string         `json:"external_signaling_url"`
	ChannelID            string          `json:"channel_id"`
	SessionID            string          `json:"session_id"`
	Multistream          bool            `json:"multistream"`
	Spotlight            bool            `json:"spotlight"`
	CreatedTime          int64           `json:"created_time"`
	CreatedTimestamp     string          `json:"created_timestamp"`
	MaxConnections       *int64          `json:"max_connections"`
	TotalConnections     *int64          `json:"total_connections"`
	SessionMetadata      json.RawMessage `json:"session_metadata"`
}

// soraTerminateSession is TerminateSession's answer.
type soraTerminateSession struct {
	SessionID string `json:"session_id"`
}

// soraStatsReport is GetStatsReport's answer: the counters sora_exporter
// reads (collector/sora_api.go), then Hayate's own.
type soraStatsReport struct {
	Version                           string `json:"version"`
	TotalConnectionCreated            int64  `json:"total_connection_created"`
	TotalConnectionUpdated            int64  `json:"total_connection_updated"`
	TotalConnectionDestroyed          int64  `json:"total_connection_destroyed"`
	TotalSuccessfulConnections        int64  `json:"total_successful_connections"`
	TotalOngoingConnections           int64  `json:"total_ongoing_connections"`
	TotalFailedConnections            int64  `json:"total_failed_connections"`
	TotalDurationSec                  int64  `json:"total_duration_sec"`
	TotalTurnUDPConnections           int64  `json:"total_turn_udp_connections"`
	TotalTurnTCPConnections           int64  `json:"total_turn_tcp_connections"`
	AverageDurationSec                int64  `json:"average_duration_sec"`
	AverageSetupTimeMsec              int64  `json:"average_setup_time_msec"`
	TotalSessionCreated               int64  `json:"total_session_created"`
	TotalSessionDestroyed             int64  `json:"total_session_destroyed"`
	TotalReceivedInvalidTurnTCPPacket int64  `json:"total_received_invalid_turn_tcp_packet"`
	Error                             struct {
		SdpGenerationError int64 `json:"sdp_generation_error"`
		SignalingError     int64 `json:"signaling_error"`
	} `json:"error"`
	TotalSuccessfulAuthWebhook    int64             `json:"total_successful_auth_webhook"`
	TotalFailedAuthWebhook        int64             `json:"total_failed_auth_webhook"`
	TotalSuccessfulSessionWebhook int64             `json:"total_successful_session_webhook"`
	TotalFailedSessionWebhook     int64             `json:"total_failed_session_webhook"`
	TotalIgnoredSessionWebhook    int64             `json:"total_ignored_session_webhook"`
	TotalSuccessfulEventWebhook   int64             `json:"total_successful_event_webhook"`
	TotalFailedEventWebhook       int64             `json:"total_failed_event_webhook"`
	TotalIgnoredEventWebhook      int64             `json:"total_ignored_event_webhook"`
	TotalReceivedSCTP             int64             `json:"total_received_sctp"`
	TotalReceivedSCTPByteSize     int64             `json:"total_received_sctp_byte_size"`
	TotalSentSCTP                 int64             `json:"total_sent_sctp"`
	TotalSentSCTPByteSize         int64             `json:"total_sent_sctp_byte_size"`
	Cluster                       *soraStatsCluster `json:"cluster"`

	// Hayate's own (README, GetStatsReport).
	Mode                    string            `json:"mode"`
	OperatorMode            string            `json:"operator_mode"`
	HealthMode              string            `json:"health_mode"`
	NodeName                string            `json:"node_name"`
	TotalOngoingSessions    int64             `json:"total_ongoing_sessions"`
	RefusedConnections      map[string]uint64 `json:"refused_connections"`
	TotalAuthWebhookAllowed int64             `json:"total_auth_webhook_allowed"`
	TotalAuthWebhookDenied  int64             `json:"total_auth_webhook_denied"`
	TotalIgnoredSignaling   int64             `json:"total_ignored_signaling_messages"`
	TotalReOffers           int64             `json:"total_re_offers"`
	TotalRedirects          int64             `json:"total_redirects"`
	TotalSimulcastSwitched  int64             `json:"total_simulcast_switched"`
	TotalRidRequests        int64             `json:"total_rid_requests"`
	TotalSpotlightFocused   int64             `json:"total_spotlight_focused"`
	TotalUnsupportedSession int64             `json:"total_unsupported_session_payouts"`
	Ready                   bool              `json:"ready"`
	Drain                   json.RawMessage   `json:"drain"`
	DataChannels            json.RawMessage   `json:"data_channels"`
	RTCStats                json.RawMessage   `json:"rtc_stats"`
	TURN                    json.RawMessage   `json:"turn"`
	ICETCP                  json.RawMessage   `json:"ice_tcp"`
	Media                   json.RawMessage   `json:"media"`
	Runtime                 json.RawMessage   `json:"runtime"`
}

// soraStatsCluster is GetStatsReport's cluster object: raft_state,
// raft_term and raft_commit_index as sora_exporter's cluster metrics read
// them, then Hayate's own.
type soraStatsCluster struct {
	RaftState        string `json:"raft_state"`
	RaftTerm         uint64 `json:"raft_term"`
	RaftCommitIndex  uint64 `json:"raft_commit_index"`
	RaftAppliedIndex uint64 `json:"raft_applied_index"`
	RaftLeader       string `json:"raft_leader"`
	ClusterNodeName  string `json:"cluster_node_name"`
}

// soraClusterNode is one entry of ListClusterNodes (docs/spec/sora-protocol.md
// §5.5; sora_exporter decodes cluster_node_name, node_name and mode), plus
// Hayate's connections.
type soraClusterNode struct {
	ClusterNodeName       string  `json:"cluster_node_name"`
	NodeName              *string `json:"node_name"`
	Epoch                 uint64  `json:"epoch"`
	Mode                  string  `json:"mode"`
	ClusterSignalingURL   string  `json:"cluster_signaling_url"`
	ClusterAPIURL         string  `json:"cluster_api_url"`
	MemberSince           *string `json:"member_since"`
	SoraVersion           *string `json:"sora_version"`
	LicenseMaxNodes       *int64  `json:"license_max_nodes"`
	LicenseMaxConnections int64   `json:"license_max_connections"`
	LicenseSerialCode     *string `json:"license_serial_code"`
	LicenseType           *string `json:"license_type"`
	Connected             bool    `json:"connected"`
	TemporaryNode         bool    `json:"temporary_node"`
	Connections           int64   `json:"connections"` // Hayate's
}

// soraClusterChannel is one entry of ListClusterChannels: Sora documents no
// shape; Hayate's is its channel table (README).
type soraClusterChannel struct {
	ChannelID       string `json:"channel_id"`
	ClusterNodeName string `json:"cluster_node_name"`
	Epoch           uint64 `json:"epoch"`
	ClaimIndex      uint64 `json:"claim_index"`
}

// The cluster operations' answers: the request's parameter (CLUSTER_API).
type (
	soraInitCluster struct {
		NodeNameList []string `json:"node_name_list"`
	}
	soraRegisterClusterNode struct {
		ContactNodeName string `json:"contact_node_name"`
	}
	soraPurgeClusterNode struct {
		TargetNodeName string `json:"target_node_name"`
	}
)

// soraError is every error answer.
type soraError struct {
	ErrorType string `json:"error_type"`
	Message   string `json:"message"`
}

// strictDecode decodes one JSON value into v, refusing unknown fields and
// trailing data.
func strictDecode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// apiOK posts target with body to n, wants 200 application/json, and decodes
// the answer strictly into a T.
func apiOK[T any](t testing.TB, n *Node, target, body string) T {
	t.Helper()
	var v T
	st, data := apiRaw(t, n, target, body)
	if st != http.StatusOK {
		t.Fatalf("%s %s: %d %s", target, body, st, data)
	}
	if err := strictDecode(data, &v); err != nil {
		t.Fatalf("%s: answer does not decode into %T: %v\n%s", target, v, err, data)
	}
	return v
}

// apiErr posts target with body to n and wants error errType with status.
func apiErr(t testing.TB, n *Node, target, body string, status int, errType string) {
	t.Helper()
	st, data := apiRaw(t, n, target, body)
	var e soraError
	if err := strictDecode(data, &e); err != nil || st != status || e.ErrorType != errType || e.Message == "" {
		t.Fatalf("%s %s: got %d %s, want %d %s", target, body, st, data, status, errType)
	}
}

// apiRaw posts target (none when empty) with body to n and returns the
// status and the answer, which must be JSON.
func apiRaw(t testing.TB, n *Node, target, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.apiURL(), strings.NewReader(body))
	if target != "" {
		req.Header.Set("x-sora-target", target)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: content-type %q", target, ct)
	}
	return resp.StatusCode, data
}
