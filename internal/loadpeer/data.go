package loadpeer

import (
	"context"
	"sync"

	"github.com/hayate-sfu/hayate/rtpcore/datachan"
)

// DataChannels of a peer (Options.DataChannels): SCTP over the peer's DTLS
// once it is up, accepting the channels the server opens, as a Sora client
// does.

// dataState is a peer's association and its channels by label.
type dataState struct {
	mu    sync.Mutex
	assoc *datachan.Association
	chans map[string]*datachan.Channel
	onMsg func(label string, msg []byte, binary bool)
}

func (d *dataState) Opened(ch *datachan.Channel) {
	d.mu.Lock()
	d.chans[ch.Label()] = ch
	d.mu.Unlock()
}

func (d *dataState) Message(ch *datachan.Channel, msg []byte, binary bool) {
	if d.onMsg != nil {
		d.onMsg(ch.Label(), msg, binary)
	}
}

func (d *dataState) Closed(ch *datachan.Channel) {
	d.mu.Lock()
	delete(d.chans, ch.Label())
	d.mu.Unlock()
}

func (d *dataState) Ended() {}

// startData runs SCTP over the finished DTLS connection (we are its client).
func (p *Peer) startData(ctx context.Context) error {
	d := &dataState{chans: map[string]*datachan.Channel{}, onMsg: p.opt.OnData}
	a, err := datachan.Start(ctx, p.dconn, true, datachan.Config{MaxMessageSize: 1 << 20, AcceptChannels: true}, d)
	if err != nil {
		return err
	}
	d.assoc = a
	p.data = d
	return nil
}

// DataLabels lists the DataChannels open now.
func (p *Peer) DataLabels() []string {
	if p.data == nil {
		return nil
	}
	p.data.mu.Lock()
	defer p.data.mu.Unlock()
	out := make([]string, 0, len(p.data.chans))
	for l := range p.data.chans {
		out = append(out, l)
	}
	return out
}

// SendData sends one message on the DataChannel labelled label.
func (p *Peer) SendData(label string, msg []byte, binary bool) error {
	if p.data == nil {
		return ErrNoChannel
	}
	p.data.mu.Lock()
	ch := p.data.chans[label]
	p.data.mu.Unlock()
	if ch == nil {
		return ErrNoChannel
	}
	return ch.Send(msg, binary)
}
