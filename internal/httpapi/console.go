package httpapi

import (
	"net/http"
	"strings"
)

// The web console (issue 12) is served beside the API: package web's
// handler answers GET and HEAD of every path outside /v1 that the API
// does not route (its pages and assets), and the API keeps its JSON 404
// envelope for everything else.

// consoleRoutes adds the console's own paths to mux: /docs (the API
// reference page) and /test, the old test page's address, which moves to /.
func (s *Server) consoleRoutes(mux *http.ServeMux) {
	if s.console == nil {
		return
	}
	mux.Handle("GET /docs", s.console)
	mux.Handle("GET /test", http.RedirectHandler("/", http.StatusFound))
}

// serveUnrouted answers a request no route took: the console's page or
// asset for GET and HEAD outside the API, the 404 envelope otherwise.
func (s *Server) serveUnrouted(w http.ResponseWriter, r *http.Request) {
	if s.console != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) && !isAPIPath(r.URL.Path) {
		s.console.ServeHTTP(w, r)
		return
	}
	s.writeErrorNoRoute(w, r)
}

// isAPIPath reports whether path is under the API's prefix, where an
// unknown path is the API's 404, never a console page.
func isAPIPath(path string) bool {
	return path == "/v1" || strings.HasPrefix(path, "/v1/")
}
