package web

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func testBuild() fstest.MapFS {
	return fstest.MapFS{
		"index.html":           {Data: []byte(`<!doctype html><div id="app"></div><script type="module" src="/assets/index-abc.js"></script>`)},
		"favicon.svg":          {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"></svg>`)},
		"assets/index-abc.js":  {Data: []byte(strings.Repeat("console.log('wrenn');\n", 200))},
		"assets/index-abc.css": {Data: []byte("body{margin:0}")},
	}
}

func get(t *testing.T, h http.Handler, method, target string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConsoleServesTheBuild(t *testing.T) {
	c := NewFS(testBuild())
	if !c.Built() {
		t.Fatal("Built() = false with an index.html")
	}
	tests := []struct {
		target, wantType, wantCache, wantBody string
		wantStatus                            int
	}{
		{"/", "text/html; charset=utf-8", cacheValidate, `<div id="app">`, 200},
		{"/index.html", "text/html; charset=utf-8", cacheValidate, `<div id="app">`, 200},
		{"/sandboxes/sb-1234", "text/html; charset=utf-8", cacheValidate, `<div id="app">`, 200},
		{"/docs", "text/html; charset=utf-8", cacheValidate, `<div id="app">`, 200},
		{"/assets/index-abc.js", "text/javascript; charset=utf-8", cacheForever, "console.log", 200},
		{"/assets/index-abc.css", "text/css; charset=utf-8", cacheForever, "body{", 200},
		{"/favicon.svg", "image/svg+xml", cacheValidate, "<svg", 200},
		{"/assets/gone-123.js", "", cacheValidate, "404", 404},
		{"/robots.txt", "", cacheValidate, "404", 404},
		{"/assets/", "", cacheValidate, "404", 404},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			res := get(t, c, "GET", tt.target)
			b := body(t, res)
			if res.StatusCode != tt.wantStatus || !strings.Contains(b, tt.wantBody) {
				t.Fatalf("GET %s = %d %q", tt.target, res.StatusCode, b)
			}
			if tt.wantType != "" && res.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", res.Header.Get("Content-Type"), tt.wantType)
			}
			if got := res.Header.Get("Cache-Control"); got != tt.wantCache {
				t.Errorf("Cache-Control = %q, want %q", got, tt.wantCache)
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
			if strings.HasPrefix(tt.wantType, "text/html") && !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") {
				t.Errorf("a page without its Content-Security-Policy: %q", res.Header.Get("Content-Security-Policy"))
			}
		})
	}
}

func TestConsoleRevalidatesAndCompresses(t *testing.T) {
	c := NewFS(testBuild())
	res := get(t, c, "GET", "/assets/index-abc.js", "Accept-Encoding", "gzip, br")
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding = %q for a client taking gzip", res.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if string(plain) != string(testBuild()["assets/index-abc.js"].Data) {
		t.Fatal("gzip body is not the file")
	}
	if res := get(t, c, "GET", "/assets/index-abc.js", "Accept-Encoding", "gzip;q=0"); res.Header.Get("Content-Encoding") != "" {
		t.Error("gzip sent to a client refusing it")
	}

	res = get(t, c, "GET", "/keys")
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("a page without an ETag")
	}
	if res := get(t, c, "GET", "/keys", "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match of the current ETag = %d, want 304", res.StatusCode)
	}
	if res := get(t, c, "HEAD", "/"); res.StatusCode != 200 || body(t, res) != "" {
		t.Errorf("HEAD / = %d", res.StatusCode)
	}
	if res := get(t, c, "POST", "/"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", res.StatusCode)
	}
}

func TestConsoleNotBuilt(t *testing.T) {
	c := NewFS(fstest.MapFS{".gitkeep": {}})
	if c.Built() {
		t.Fatal("Built() = true with no index.html")
	}
	for _, target := range []string{"/", "/sandboxes", "/assets/x.js"} {
		res := get(t, c, "GET", target)
		if b := body(t, res); res.StatusCode != 200 || !strings.Contains(b, "build_console") {
			t.Errorf("GET %s = %d %q, want the page saying how to build", target, res.StatusCode, b)
		}
	}
}

// The embedded build is whatever this checkout holds: with or without an
// npm build, the console must serve something sensible at /.
func TestEmbedded(t *testing.T) {
	c := New()
	res := get(t, c, "GET", "/")
	b := body(t, res)
	if res.StatusCode != 200 || !strings.Contains(b, "<html") && !strings.Contains(b, "<div id=\"app\">") {
		t.Fatalf("GET / = %d %q", res.StatusCode, b)
	}
}
