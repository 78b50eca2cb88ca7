package control

import (
	"net/http"
	"net/http/pprof"
)

// Ops are the operator endpoints served on the API port next to the API
// itself (POST /).
type Ops struct {
	// Metrics serves GET /metrics; nil serves none. It needs the token.
	Metrics http.Handler
	// Ready says whether the node should get new connections (GET /readyz)
	// and, if not, why.
	Ready func() (bool, string)
	// Status serves the status page under /status; nil serves none. The
	// page itself holds no data and is served without the token (a browser
	// cannot send one when it navigates); everything it shows comes from
	// the API with the token the operator enters.
	Status http.Handler
	// Pprof serves Go's profiles at /debug/pprof/, with the token.
	Pprof bool
}

// Handler returns the API port's whole handler: the API at /, the
// operator endpoints of ops, and /healthz and /readyz. Health and
// readiness answer without the token: they say one bit each, and load
// balancers' health checks cannot send one.
func (a *API) Handler(ops Ops) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", a)
	Health(mux, ops.Ready)
	if ops.Metrics != nil {
		mux.Handle("/metrics", a.Authorize(ops.Metrics))
	}
	if ops.Status != nil {
		mux.Handle("/status", ops.Status)
		mux.Handle("/status/", ops.Status)
	}
	if ops.Pprof {
		mux.Handle("/debug/pprof/", a.Authorize(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/profile", a.Authorize(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/trace", a.Authorize(http.HandlerFunc(pprof.Trace)))
	}
	return mux
}

// Authorize wraps h with the API's token rule: with api_token set, a
// request without `Authorization: Bearer <api_token>` is answered 401
// UNAUTHORIZED (RFC 6750 §3) and never reaches h.
func (a *API) Authorize(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hayate"`)
			a.fail(w, r, errUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Health adds GET /healthz (200 while the process serves HTTP) and GET
// /readyz (200 "ready" when ready() holds, else 503 with the reason) to
// mux. The node serves them on its signaling port too, the port a load
// balancer sends clients to.
func Health(mux *http.ServeMux, ready func() (bool, string)) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		plain(w, r, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if ok, why := ready(); !ok {
			plain(w, r, http.StatusServiceUnavailable, "not ready: "+why+"\n")
			return
		}
		plain(w, r, http.StatusOK, "ready\n")
	})
}

func plain(w http.ResponseWriter, r *http.Request, status int, body string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		status, body = http.StatusMethodNotAllowed, "use GET\n"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write([]byte(body)) //nolint:errcheck // the client may be gone
	}
}
