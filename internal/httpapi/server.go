package httpapi

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/api"
	"github.com/wrennhq/wrenn/internal/auth"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/fleet"
)

// Log attribute keys.
const (
	attrMethod    = "method"
	attrPath      = "path"
	attrStatus    = "status"
	attrDuration  = "duration"
	attrError     = "error"
	attrSandboxID = "sandbox_id"
)

// DefaultMaxUploadBytes bounds the non-streaming upload endpoint.
const DefaultMaxUploadBytes = 100 << 20

// Config wires a Server.
type Config struct {
	Auth    *auth.Service
	Control *control.Service
	Logger  *slog.Logger
	// MaxUploadBytes bounds POST /v1/sandboxes/{id}/files/write; 0 means
	// DefaultMaxUploadBytes. The streaming upload has no bound.
	MaxUploadBytes int64
	// BodyGrace and MinBodyRate set the pace request bodies must keep
	// (edge.go); 0 means DefaultBodyGrace and DefaultMinBodyRate.
	BodyGrace   time.Duration
	MinBodyRate int64
	// PtyPingInterval is how often a terminal's WebSocket gets a ping;
	// 0 means every 30 seconds, as 0.1.5 sends them.
	PtyPingInterval time.Duration
	// Hosts is the registry of hosts (issue 13); nil leaves /v1/hosts
	// unserved.
	Hosts *fleet.Service
	// Console, when set, is the web console (package web): it serves GET
	// and HEAD of / and every other path outside /v1 (console.go).
	Console http.Handler
}

// Server is the public API.
type Server struct {
	auth      *auth.Service
	control   *control.Service
	log       *slog.Logger
	maxUpload int64
	handler   http.Handler

	bodyGrace   time.Duration
	minBodyRate int64
	ptyPing     time.Duration
	hosts       *fleet.Service
	console     http.Handler
}

// New returns a Server with its routes.
func New(c Config) *Server {
	s := &Server{auth: c.Auth, control: c.Control, log: c.Logger, maxUpload: c.MaxUploadBytes,
		bodyGrace: c.BodyGrace, minBodyRate: c.MinBodyRate, hosts: c.Hosts, console: c.Console}
	if s.maxUpload <= 0 {
		s.maxUpload = DefaultMaxUploadBytes
	}
	if s.bodyGrace <= 0 {
		s.bodyGrace = DefaultBodyGrace
	}
	if s.minBodyRate <= 0 {
		s.minBodyRate = DefaultMinBodyRate
	}
	s.ptyPing = cmp.Or(c.PtyPingInterval, ptyPingInterval)
	s.handler = s.recoverer(s.logRequests(s.paceBodies(s.routes())))
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

type methods map[string]http.HandlerFunc

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	jwt, key := s.requireToken, s.requireAPIKey
	table := map[string]methods{
		"/openapi.yaml":                         {"GET": s.serveSpec},
		"/v1/auth/signup":                       {"POST": s.signup},
		"/v1/auth/login":                        {"POST": s.login},
		"/v1/api-keys":                          {"POST": jwt(s.createAPIKey), "GET": jwt(s.listAPIKeys)},
		"/v1/api-keys/{id}":                     {"DELETE": jwt(s.deleteAPIKey)},
		"/v1/sandboxes":                         {"POST": key(s.createSandbox), "GET": key(s.listSandboxes)},
		"/v1/sandboxes/{id}":                    {"GET": key(s.getSandbox), "DELETE": key(s.destroySandbox)},
		"/v1/sandboxes/{id}/exec":               {"POST": key(s.exec)},
		"/v1/sandboxes/{id}/exec/stream":        {"GET": key(s.execStream)},
		"/v1/sandboxes/{id}/pause":              {"POST": key(s.pauseSandbox)},
		"/v1/sandboxes/{id}/ping":               {"POST": key(s.pingSandbox)},
		"/v1/sandboxes/{id}/resume":             {"POST": key(s.resumeSandbox)},
		"/v1/sandboxes/{id}/files/write":        {"POST": key(s.uploadFile)},
		"/v1/sandboxes/{id}/files/read":         {"POST": key(s.downloadFile)},
		"/v1/sandboxes/{id}/files/stream/write": {"POST": key(s.streamUploadFile)},
		"/v1/sandboxes/{id}/files/stream/read":  {"POST": key(s.downloadFile)},
		"/v1/sandboxes/{id}/files/list":         {"POST": key(s.listDir)},
		"/v1/sandboxes/{id}/files/mkdir":        {"POST": key(s.makeDir)},
		"/v1/sandboxes/{id}/files/remove":       {"POST": key(s.removePath)},
		"/v1/sandboxes/{id}/files/stat":         {"POST": key(s.statPath)},
		"/v1/sandboxes/{id}/files/move":         {"POST": key(s.movePath)},
		"/v1/sandboxes/{id}/files/watch":        {"GET": key(s.watchDir)},
		"/v1/snapshots":                         {"POST": key(s.createSnapshot), "GET": key(s.listSnapshots)},
		"/v1/snapshots/{name}":                  {"DELETE": key(s.deleteSnapshot)},
		// Metrics, stats and usage (issue 11).
		"/v1/sandboxes/{id}/metrics": {"GET": key(s.sandboxMetrics)},
		"/v1/sandboxes/stats":        {"GET": key(s.sandboxStats)},
		"/v1/sandboxes/usage":        {"GET": key(s.sandboxUsage)},
		// Background processes (process.go).
		"/v1/sandboxes/{id}/processes":                   {"GET": key(s.listProcesses)},
		"/v1/sandboxes/{id}/processes/{selector}":        {"DELETE": key(s.killProcess)},
		"/v1/sandboxes/{id}/processes/{selector}/stream": {"GET": key(s.processStream)},
		// Terminals (issue 11).
		"/v1/sandboxes/{id}/pty": {"GET": key(s.ptySession)},
	}
	// Hosts (issue 13, hosts.go): the registry of hosts, for logged-in
	// users; drain and undrain are our extension of 0.1.5.
	if s.hosts != nil {
		maps.Copy(table, map[string]methods{
			"/v1/hosts":                     {"POST": jwt(s.createHost), "GET": jwt(s.listHosts)},
			"/v1/hosts/{id}":                {"GET": jwt(s.getHost), "DELETE": jwt(s.deleteHost)},
			"/v1/hosts/{id}/token":          {"POST": jwt(s.regenerateHostToken)},
			"/v1/hosts/{id}/delete-preview": {"GET": jwt(s.hostDeletePreview)},
			"/v1/hosts/{id}/tags":           {"GET": jwt(s.listHostTags), "POST": jwt(s.addHostTag)},
			"/v1/hosts/{id}/tags/{tag}":     {"DELETE": jwt(s.removeHostTag)},
			"/v1/hosts/{id}/drain":          {"POST": jwt(s.drainHost)},
			"/v1/hosts/{id}/undrain":        {"POST": jwt(s.undrainHost)},
			// The agent link (fleetlink.go): revoke a host's certificates.
			"/v1/hosts/{id}/revoke": {"POST": jwt(s.revokeHost)},
		})
	}
	// /v1/capsules is the later product's name for the sandbox surface:
	// every sandbox route is served there too, by the same handler
	// (onCapsules tells the one place where the two differ).
	for _, path := range slices.Collect(maps.Keys(table)) {
		if rest, ok := strings.CutPrefix(path, sandboxesPrefix); ok {
			table[capsulesPrefix+rest] = table[path]
		}
	}
	for path, ms := range table {
		allowed := make([]string, 0, len(ms))
		for m, h := range ms {
			mux.Handle(m+" "+path, h)
			allowed = append(allowed, m)
		}
		sort.Strings(allowed)
		allow := strings.Join(allowed, ", ")
		// Any other method on a known path: 405 in the envelope, not the
		// mux's plain text.
		notAllowed := func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			s.writeError(w, r, wrenn.Errorf(wrenn.EMethodNotAllowed, "method %s is not allowed here; allowed: %s", r.Method, allow))
		}
		if !shadows(table, path) {
			mux.HandleFunc(path, notAllowed)
			continue
		}
		// A literal path beside a wildcard one (/v1/sandboxes/stats beside
		// /v1/sandboxes/{id}): a pattern of every method would clash with
		// the wildcard's methods, so each other method gets its own.
		for _, m := range otherMethods {
			if _, ok := ms[m]; !ok && (m != http.MethodHead || ms[http.MethodGet] == nil) {
				mux.HandleFunc(m+" "+path, notAllowed)
			}
		}
	}
	// The web console (console.go): its pages, and anything unrouted.
	s.consoleRoutes(mux)
	mux.HandleFunc("/", s.serveUnrouted)
	return mux
}

// The sandbox surface and its alias.
const (
	sandboxesPrefix = "/v1/sandboxes"
	capsulesPrefix  = "/v1/capsules"
)

// onCapsules reports whether r came in under /v1/capsules.
func onCapsules(r *http.Request) bool {
	pattern := r.Pattern
	if _, path, ok := strings.Cut(pattern, " "); ok {
		pattern = path // "METHOD /path"
	}
	return strings.HasPrefix(pattern, capsulesPrefix)
}

// otherMethods are the methods a path answers 405 to when it has no
// handler of theirs.
var otherMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodTrace, http.MethodConnect}

// shadows reports whether another path of table has a wildcard segment
// where path has a literal one and matches it otherwise, so that the two
// overlap.
func shadows(table map[string]methods, path string) bool {
	segs := strings.Split(path, "/")
	for other := range table {
		osegs := strings.Split(other, "/")
		if other == path || len(osegs) != len(segs) {
			continue
		}
		overlap, wild := true, false
		for i, o := range osegs {
			switch {
			case o == segs[i]:
			case strings.HasPrefix(o, "{") && !strings.HasPrefix(segs[i], "{"):
				wild = true
			default:
				overlap = false
			}
		}
		if overlap && wild {
			return true
		}
	}
	return false
}

// writeErrorNoRoute answers a request no route took with the 404 envelope.
func (s *Server) writeErrorNoRoute(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, wrenn.Errorf(wrenn.ENotFound, "no route for %s %s", r.Method, r.URL.Path))
}

func (s *Server) serveSpec(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(api.OpenAPI)
}

// statusRecorder remembers the status a handler wrote, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (flush,
// hijack for WebSockets, deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The access log is at debug level: unless it is on, a request
		// pays for neither the recorder nor the line (issue 14).
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		// The query string is left out: it may carry names a team considers private.
		s.log.DebugContext(r.Context(), "request", slog.String(attrMethod, r.Method), slog.String(attrPath, r.URL.Path),
			slog.Int(attrStatus, rec.status), slog.Duration(attrDuration, time.Since(start)))
	})
}

// recoverer turns a handler panic into a logged 500 in the envelope.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil || v == http.ErrAbortHandler {
				if v != nil {
					panic(v)
				}
				return
			}
			s.log.ErrorContext(r.Context(), "handler panic", slog.String(attrMethod, r.Method), slog.String(attrPath, r.URL.Path),
				slog.String(attrError, fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
			s.writeError(w, r, wrenn.Errorf(wrenn.EInternal, "internal error"))
		}()
		next.ServeHTTP(w, r)
	})
}
