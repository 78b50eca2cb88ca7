package rtpcore

import "github.com/hayate-sfu/hayate/media"

// Voice activity for spotlight (media.VoiceTransport): the receive path
// counts, per published audio track, the packets whose audio level header
// extension (RFC 6464 §3: one byte, V bit then the level in -dBov) says
// speech; signal takes the counts a few times a second.

// noteLevel counts one audio packet's level extension (ext is its value;
// empty when the packet carries none).
func (pt *pubTrack) noteLevel(ext []byte) {
	if len(ext) == 0 {
		return
	}
	pt.heard.Add(1)
	if ext[0]&0x7f <= media.VoiceLevel {
		pt.voiced.Add(1)
	}
}

// TakeVoice implements media.VoiceTransport.
func (t *Transport) TakeVoice(ssrc uint32) (voiced, heard int) {
	for _, pt := range *t.pubs.Load() {
		if pt.SSRC == ssrc && pt.Kind == media.Audio {
			return int(pt.voiced.Swap(0)), int(pt.heard.Swap(0))
		}
	}
	return 0, 0
}

var _ media.VoiceTransport = (*Transport)(nil)
