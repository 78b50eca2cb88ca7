package rtpcore

import (
	"time"

	"github.com/hayate-sfu/hayate/rtpcore/codecs"
)

// The API's key frame request (Sora_20241211.RequestKeyFrame,
// https://sora-doc.shiguredo.jp/API_CONNECTION, read in the copy at
// https://develop.shiguredo-sora-doc.pages.dev/API_CONNECTION): "キーフレーム要求を送って
// からキーフレームが送られてくるまでは、 1 秒間隔で最大 5 回までリクエストを
// 送信します" (from the request until a key frame comes, a request every
// second, 5 at most). Each layer of the publisher's video counts its own:
// the PLIs go from the layer's packets (as a subscriber's do), and a key
// frame of the layer after the first PLI ends its requests.
const (
	keyRequests        = 5
	keyRequestInterval = time.Second
)

// repeatKeyFrame is called for each packet of a layer with API key frame
// requests left (ly.apiKeys > 0); key tells whether the packet starts a key
// frame. Called on the receive loop s.
func (ly *layer) repeatKeyFrame(s *shard, key bool) {
	left := ly.apiKeys.Load()
	if key && left < keyRequests {
		ly.apiKeys.Store(0) // the key frame came
		return
	}
	last := ly.apiKeyAt.Load()
	if last != 0 && s.now-last < keyRequestInterval.Nanoseconds() {
		return
	}
	if !ly.apiKeyAt.CompareAndSwap(last, s.now) {
		return
	}
	if !ly.requestKeyFrame(s) {
		// Not sent (another PLI went out within pliInterval, or the
		// transport is not ready): try again from the next packet.
		ly.apiKeyAt.CompareAndSwap(s.now, last)
		return
	}
	ly.apiKeys.CompareAndSwap(left, left-1)
}

// keyStart tells whether a packet of the track, whose payload is payload
// and whose descriptor parseDescriptor gave as desc, starts a key frame. A
// plain track's packets are not parsed on the way through (desc is empty):
// they are only while an API key frame request waits.
func (pt *pubTrack) keyStart(desc codecs.Descriptor, payload []byte) bool {
	if pt.simulcast {
		return desc.KeyStart
	}
	return codecs.Parse(pt.codec, payload).KeyStart
}
