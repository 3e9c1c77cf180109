// Package web is the Wrenn web console: the Vite build of this directory
// (src/, built into dist/ by scripts/lib.sh's build_console), embedded in
// the binary and served by `wrenn server` for every page that is not the
// API. The console is a client of the public API only.
//
// On a fresh clone dist/ holds only a placeholder, so the Go build works
// before any npm build; the console then answers with a page saying how
// to build it. Only cmd/wrenn imports this package.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed all:dist
var dist embed.FS

// Console serves the console's files: hashed assets for a year, anything
// else (index.html for every client-side route) revalidated each time.
type Console struct {
	files fs.FS
	built bool

	mu    sync.Mutex
	cache map[string]*asset // by path, filled on first request
}

// asset is a file ready to serve: its bytes, their gzip and an ETag.
type asset struct {
	body, gz []byte
	etag     string
	ctype    string
}

// New returns the console built into this binary.
func New() *Console {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is embedded by the directive above
	}
	return NewFS(sub)
}

// NewFS returns a console serving files, a Vite build's output.
func NewFS(files fs.FS) *Console {
	_, err := fs.Stat(files, "index.html")
	return &Console{files: files, built: err == nil, cache: map[string]*asset{}}
}

// Built reports whether the console's bundle was built into the binary.
func (c *Console) Built() bool { return c.built }

const (
	assetsDir     = "assets/"
	cacheForever  = "public, max-age=31536000, immutable"
	cacheValidate = "no-cache"
	// The page loads only what it was built with: no CDN, no inline
	// script. xterm.js, uPlot and swagger-ui set inline styles.
	contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; " +
		"frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)

// ServeHTTP serves GET and HEAD of the console's files and pages.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if !c.built {
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", cacheValidate)
		_, _ = w.Write([]byte(notBuiltPage))
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	page := name == "" || name == "index.html"
	a, err := c.load(name)
	switch {
	case !page && err == nil:
		if strings.HasPrefix(name, assetsDir) {
			h.Set("Cache-Control", cacheForever) // the name holds the content's hash
		} else {
			h.Set("Cache-Control", cacheValidate)
		}
	case !page && (strings.HasPrefix(name+"/", assetsDir) || path.Ext(name) != ""):
		// A missing file is not a page: index.html in its place would
		// hand a script tag HTML.
		h.Set("Cache-Control", cacheValidate)
		http.NotFound(w, r)
		return
	default:
		// A client-side route (/sandboxes/sb-1, /keys, /docs): the app.
		if a, err = c.load("index.html"); err != nil {
			http.Error(w, "console index missing", http.StatusInternalServerError)
			return
		}
		h.Set("Cache-Control", cacheValidate)
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
	}
	c.write(w, r, a)
}

func (c *Console) write(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Add("Vary", "Accept-Encoding")
	body, etag := a.body, a.etag
	if a.gz != nil && acceptsGzip(r) {
		body, etag = a.gz, strings.TrimSuffix(a.etag, `"`)+`-gz"`
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// load reads name from the build once and keeps it ready.
func (c *Console) load(name string) (*asset, error) {
	if name == "" {
		name = "index.html"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.cache[name]; ok {
		return a, nil
	}
	st, err := fs.Stat(c.files, name)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fs.ErrNotExist
	}
	body, err := fs.ReadFile(c.files, name)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	a := &asset{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: contentType(name)}
	if compressible(a.ctype) && len(body) > 1024 {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if b.Len() < len(body) {
			a.gz = b.Bytes()
		}
	}
	c.cache[name] = a
	return a, nil
}

// contentTypes are those a build holds, fixed here rather than left to
// the host's mime.types.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".json":  "application/json",
	".map":   "application/json",
	".woff2": "font/woff2",
	".woff":  "font/woff",
	".ttf":   "font/ttf",
	".wasm":  "application/wasm",
	".txt":   "text/plain; charset=utf-8",
}

func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.HasPrefix(ctype, "image/svg") || ctype == "application/json"
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

const notBuiltPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Wrenn</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1c2733;line-height:1.5}code{background:#eef2f6;padding:.1em .3em;border-radius:4px}</style>
</head><body>
<h1>Wrenn</h1>
<p>The API is up, but this binary was built without the web console.</p>
<p>Build it with <code>scripts/run</code> (or <code>. scripts/lib.sh &amp;&amp; build_console &amp;&amp; build_wrenn</code>),
which runs <code>npm ci</code> and <code>npm run build</code> in <code>web/</code> before <code>go build</code>.</p>
<p>The API reference is at <a href="/openapi.yaml">/openapi.yaml</a>.</p>
</body></html>
`
