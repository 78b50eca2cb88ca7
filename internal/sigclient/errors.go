package sigclient

import "errors"

// ErrNotOffer is a first message that is neither offer, redirect nor close.
var ErrNotOffer = errors.New("sigclient: unexpected message before offer")
