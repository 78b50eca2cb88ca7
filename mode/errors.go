package mode

import "errors"

// ErrInvalid is returned for a mode name that is not one of Sora's three.
var ErrInvalid = errors.New("mode: invalid mode (want normal, block_new_session or block_new_connection)")
