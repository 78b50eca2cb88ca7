package media

// Spotlight across the seam: signal chooses which publishers of a channel
// are in focus from how much they speak, which the media path reads from
// the audio level header extension of their audio (RFC 6464) when the
// answer accepted it (Extensions.AudioLevel).

// VoiceTransport is implemented by transports that read their peer's audio
// levels.
type VoiceTransport interface {
	// TakeVoice reports, for the peer's audio track ssrc, how many packets
	// carried an audio level since the last call and how many of those
	// were speech (VoiceLevel or louder), and starts counting again.
	TakeVoice(ssrc uint32) (voiced, heard int)
}

// VoiceLevel is the quietest audio level, in -dBov (RFC 6464 §3: 0 is the
// loudest, 127 silence), that counts as speech.
const VoiceLevel = 50
