package signal

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"time"

	"github.com/hayate-sfu/hayate/webhook"
)

// unsupportedPayouts are the auth webhook payouts Sora documents
// (https://sora-doc.shiguredo.jp/AUTH_WEBHOOK, sora-server-sdk-ts
// AuthWebhookAcceptResponse, https://doc.sora-cloud.shiguredo.app/webhook)
// that Hayate cannot honour. A payout that asks for one of them is refused
// with 4502 UNSUPPORTED-PAYOUT-<FIELD> rather than dropped: an application
// that pays out a policy must not believe it is in force. null and false
// ask for nothing and are accepted. Simulcast (simulcast.go), spotlight
// (spotlight.go) and video_bit_rate (the simulcast encodings' budget) are
// applied, not listed here.
// The README's "Sora compatibility: webhooks and payouts" lists them.
var unsupportedPayouts = []string{
	"audio_bit_rate",
	"audio_opus_params", "audio_lyra_params",
	"video_vp9_params", "video_av1_params", "video_h264_params", "h264_profile_level_id",
	"simulcast_multicodec", "simulcast_codecs",
	"signaling_notify_ice_connection_state",
	"user_agent_stats", "ipv4_address", "ipv6_address", "audio_streaming_language_code",
	"forwarding_filter", "forwarding_filters",
	"rtp_packet_loss_simulator_incoming", "rtp_packet_loss_simulator_outgoing",
}

// unsupportedPayout returns the refusal of the first payout in fields that
// Hayate cannot honour, or nil.
func unsupportedPayout(fields map[string]json.RawMessage) *CloseError {
	for _, k := range unsupportedPayouts {
		if v, ok := fields[k]; ok && asksSomething(v) {
			return unsupportedPayoutError(k)
		}
	}
	// Inside the audio or video object: codec_type is applied, and video's
	// bit_rate as video_bit_rate; anything else (audio's bit_rate) is not.
	for _, k := range []string{"audio", "video"} {
		var obj map[string]json.RawMessage
		if json.Unmarshal(fields[k], &obj) == nil {
			for sub, v := range obj {
				if sub != "codec_type" && (k != "video" || sub != "bit_rate") && asksSomething(v) {
					return unsupportedPayoutError(k + "_" + sub)
				}
			}
		}
	}
	return nil
}

// unsupportedPayoutError is 4502 UNSUPPORTED-PAYOUT-<FIELD>, for example
// UNSUPPORTED-PAYOUT-VIDEO-BIT-RATE.
func unsupportedPayoutError(field string) *CloseError {
	return closeErr(CodeAuthFailed, clipReason("UNSUPPORTED-PAYOUT-"+strings.ToUpper(strings.ReplaceAll(field, "_", "-"))))
}

func asksSomething(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) != 0 && !bytes.Equal(v, []byte("null")) && !bytes.Equal(v, []byte("false"))
}

// applyMediaPayouts applies the auth webhook's audio, video, codec type and
// connection_lifetime payouts (payout > connect).
func (c *Conn) applyMediaPayouts(d webhook.Decision) *CloseError {
	if e := unsupportedPayout(d.Fields); e != nil {
		return e
	}
	audio, video := c.audio, c.video
	audioType, videoType := "", ""
	if len(d.Audio) != 0 {
		s, e := parseMediaSpec(d.Audio, ErrAuthBadResponse)
		if e != nil {
			return e
		}
		audio, audioType = s.Enabled, s.CodecType
	}
	if len(d.Video) != 0 {
		s, e := parseMediaSpec(d.Video, ErrAuthBadResponse)
		if e != nil {
			return e
		}
		video, videoType = s.Enabled, s.CodecType
		if s.BitRate > 0 {
			c.videoBitRate = s.BitRate
		}
	}
	if d.AudioCodecType != nil {
		audioType = strings.ToUpper(*d.AudioCodecType)
	}
	if d.VideoCodecType != nil {
		videoType = strings.ToUpper(*d.VideoCodecType)
	}
	c.audio, c.video = audio, video
	if c.audio && (audioType != "" || c.audioCodec.Type() == "") {
		codec, ok := chooseCodec(c.caps, audioType, c.hub.set.DefaultAudioCodecType, c.role)
		if !ok {
			return ErrAudioCodec
		}
		c.audioCodec = codec
	}
	if c.video && (videoType != "" || c.videoCodec.Type() == "") {
		codec, ok := chooseCodec(c.caps, videoType, c.hub.set.DefaultVideoCodecType, c.role)
		if !ok {
			return ErrVideoCodec
		}
		c.videoCodec = codec
	}
	if d.ConnectionLifetime != nil {
		c.lifetime = time.Duration(*d.ConnectionLifetime) * time.Second
	}
	return nil
}

// soraClient is Sora's sora_client object of the auth webhook request,
// built from the connect's sora_client, environment and libwebrtc strings
// (sora-server-sdk-go webhook.SoraClient; every field optional in
// sora-server-sdk-ts SoraClient).
type soraClient struct {
	Environment string `json:"environment,omitempty"`
	Raw         string `json:"raw,omitempty"`
	Type        string `json:"type,omitempty"`
	Version     string `json:"version,omitempty"`
	CommitShort string `json:"commit_short,omitempty"`
	Libwebrtc   string `json:"libwebrtc,omitempty"`
}

// sdkVersion is the version word of a sora_client string; commitShort the
// "(hash)" the native SDKs append.
var (
	sdkVersion  = regexp.MustCompile(`^[0-9]+(\.[0-9A-Za-z-]+)+$`)
	commitShort = regexp.MustCompile(`^\(([0-9a-f]{4,40})\)$`)
)

// parseSoraClient splits "Sora JavaScript SDK 2025.1.0" into type and
// version, and "Sora C++ SDK 2024.6.1 (ab12cd34)" also into commit_short.
// A string that does not end in a version is all type.
func parseSoraClient(raw, environment, libwebrtc string) *soraClient {
	if raw == "" && environment == "" && libwebrtc == "" {
		return nil
	}
	sc := &soraClient{Raw: raw, Type: raw, Environment: environment, Libwebrtc: libwebrtc}
	words := strings.Fields(raw)
	if n := len(words); n >= 2 {
		if m := commitShort.FindStringSubmatch(words[n-1]); m != nil {
			sc.CommitShort = m[1]
			words = words[:n-1]
		}
	}
	if n := len(words); n >= 2 && sdkVersion.MatchString(words[n-1]) {
		sc.Version = words[n-1]
		sc.Type = strings.Join(words[:n-1], " ")
	} else if sc.CommitShort != "" {
		sc.Type = strings.Join(words, " ")
	}
	return sc
}

// sessionAnswer is the session.created answer (Sora's
// SessionWebhookCreatedResponse; https://sora-doc.shiguredo.jp/SESSION_WEBHOOK).
type sessionAnswer struct {
	SessionMetadata     json.RawMessage `json:"session_metadata"`
	TrialMaxConnections *int            `json:"trial_max_connections"`
	SpotlightNumber     *int            `json:"spotlight_number"`
}

// unsupportedSessionPayouts are the session.created payouts Hayate does not
// apply. A session cannot be refused once it exists: they are logged as a
// warning and counted (total_unsupported_session_payouts).
var unsupportedSessionPayouts = []string{
	"forwarding_filter", "forwarding_filters", "audio_streaming", "audio_streaming_auto",
	"recording", "recording_expire_time", "recording_split_duration", "recording_split_only",
	"recording_metadata",
	// duplicate_client_id other than "allow" (Sora's
	// SESSION_DUPLICATE_CLIENT_ID: evict the older connection).
	"duplicate_client_id_evict",
}

// sessionCreatedAnswer applies the session.created answer to ch. It runs on
// a session webhook sender, before the channel's next session webhook.
func (h *Hub) sessionCreatedAnswer(ch *channel, answer []byte) {
	if len(bytes.TrimSpace(answer)) == 0 {
		return
	}
	var fields map[string]json.RawMessage
	var a sessionAnswer
	if json.Unmarshal(answer, &fields) != nil || json.Unmarshal(answer, &a) != nil {
		h.stats.UnsupportedSessionPayouts.Add(1)
		h.log.Warn("session.created answer ignored: not a JSON object of Sora's payouts", "channel_id", ch.id, "session_id", ch.sessionID)
		return
	}
	if v, ok := fields["duplicate_client_id"]; ok && asksSomething(v) && string(bytes.TrimSpace(v)) != `"allow"` {
		fields["duplicate_client_id_evict"] = v // allow is what Hayate does; anything else is not
	}
	for _, k := range unsupportedSessionPayouts {
		if v, ok := fields[k]; ok && asksSomething(v) {
			h.stats.UnsupportedSessionPayouts.Add(1)
			h.log.Warn("session.created payout not supported, not applied", "channel_id", ch.id, "session_id", ch.sessionID, "payout", k)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := nonNull(a.SessionMetadata); m != nil {
		ch.sessionMetadata = m
	}
	if a.TrialMaxConnections != nil && *a.TrialMaxConnections >= 0 {
		ch.maxConnections = *a.TrialMaxConnections
		ch.capped = true
	}
	// spotlight_number: Sora's preferred place for the session's number
	// (its auth payout is deprecated); it wins over the first spotlight
	// connection's, now or when that connection comes.
	if n := a.SpotlightNumber; n != nil {
		if *n < 1 || *n > maxSpotlightNumber {
			h.stats.UnsupportedSessionPayouts.Add(1)
			h.log.Warn("session.created spotlight_number out of range, not applied", "channel_id", ch.id, "session_id", ch.sessionID, "spotlight_number", *n)
			return
		}
		ch.spotNumber = *n
		if ch.spot != nil {
			ch.spot.number = *n
		}
	}
}
