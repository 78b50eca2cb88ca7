// Package statuspage is the operator's status page served on the API port
// at /status: plain HTML and a little JavaScript embedded in the binary, no
// build step. It shows the mode (and switches it), live channels and
// connections, the drain's progress and the cluster's nodes, refreshing
// itself; everything comes from the HTTP API, with the api_token the
// operator types in (kept in the tab's sessionStorage and sent as
// Authorization: Bearer).
package statuspage

import (
	"embed"
	"net/http"
)

//go:embed index.html app.js style.css
var files embed.FS

// Handler serves /status (the page) and /status/app.js, /status/style.css.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		var name, typ string
		switch r.URL.Path {
		case "/status", "/status/":
			name, typ = "index.html", "text/html; charset=utf-8"
		case "/status/app.js":
			name, typ = "app.js", "text/javascript; charset=utf-8"
		case "/status/style.css":
			name, typ = "style.css", "text/css; charset=utf-8"
		default:
			http.NotFound(w, r)
			return
		}
		data, err := files.ReadFile(name)
		if err != nil {
			http.Error(w, "missing", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", typ)
		h.Set("Cache-Control", "no-store")
		// Only our own script and style; no inline code, no frames.
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method == http.MethodGet {
			w.Write(data) //nolint:errcheck // the client may be gone
		}
	})
}
