package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/spectest"
)

// TestTypeScriptSDK runs the TypeScript SDK's own tests (sdk/typescript,
// `npm test`: Node's test runner) against a real server with real VMs. They
// reach it through a reverse proxy that checks every HTTP exchange against
// the contract, so a request the SDK makes that breaks api/openapi.yaml
// fails this test even where the server lets it pass.
func TestTypeScriptSDK(t *testing.T) {
	dir := filepath.Join(repoRoot(), "sdk", "typescript")
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv(envRequireVMs) == "1" {
				t.Fatalf("%s is not installed; the TypeScript SDK's tests need Node 20 or later", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	if out, err := exec.Command("node", "-p", "process.versions.node.split('.')[0] >= 20").Output(); err != nil || strings.TrimSpace(string(out)) != "true" {
		if os.Getenv(envRequireVMs) == "1" {
			t.Fatalf("the TypeScript SDK's tests need Node 20 or later (%s, %v)", out, err)
		}
		t.Skip("the TypeScript SDK's tests need Node 20 or later")
	}
	s := startVMServer(t, shortTempDir(t))
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		runLogged(ctx, t, dir, nil, "npm", "ci", "--no-audit", "--no-fund")
	}

	target, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:     spectest.Transport(t, nil),
		FlushInterval: -1, // streamed downloads and exec output pass as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			t.Logf("proxy: %s %s: %v", r.Method, r.URL.Path, err) // the SDK's tests abort requests
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	front := httptest.NewServer(proxy)
	defer front.Close()

	runLogged(ctx, t, dir, []string{"WRENN_URL=" + front.URL}, "npm", "test")

	// The READMEs' example, as a user runs it: every line they show is a
	// line of examples/quickstart.mjs.
	example, err := os.ReadFile(filepath.Join(dir, "examples", "quickstart.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, readme := range []struct{ path, after string }{
		{filepath.Join(dir, "README.md"), "## Example"},
		{filepath.Join(repoRoot(), "README.md"), "### TypeScript SDK"},
	} {
		b, err := os.ReadFile(readme.path)
		if err != nil {
			t.Fatal(err)
		}
		_, after, ok := strings.Cut(string(b), readme.after)
		_, block, ok2 := strings.Cut(after, "```js\n")
		block, _, ok3 := strings.Cut(block, "```")
		if !ok || !ok2 || !ok3 {
			t.Fatalf("%s has no example after %q", readme.path, readme.after)
		}
		for line := range strings.SplitSeq(block, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.Contains(string(example), l) {
				t.Errorf("%s: example line %q is not in examples/quickstart.mjs", readme.path, l)
			}
		}
	}
	key := s.account("tssdk-example@example.com")["X-API-Key"]
	out := runLogged(ctx, t, dir, []string{"WRENN_URL=" + front.URL, "WRENN_API_KEY=" + key}, "node", "examples/quickstart.mjs")
	want := "42 0\ntick 1\ntick 2\ntick 3\nexit 3\nhello from TypeScript\n"
	if !strings.HasPrefix(out, want) {
		t.Errorf("examples/quickstart.mjs printed %q, want it to begin %q", out, want)
	}
	// A bad key: the API's words, and a failing exit.
	bad := exec.CommandContext(ctx, "node", "examples/quickstart.mjs")
	bad.Dir = dir
	bad.Env = append(os.Environ(), "WRENN_URL="+front.URL, "WRENN_API_KEY=wrn_wrong")
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "invalid API key") {
		t.Errorf("examples/quickstart.mjs with a bad key: %v\n%s", err, out)
	}
}

// runLogged runs a command in dir, its output line by line into the test's
// log as it comes, fails the test if it fails, and returns the output.
func runLogged(ctx context.Context, t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.WaitDelay = 10 * time.Second // a child that keeps the output open must not hang the test
	var wg sync.WaitGroup
	var all strings.Builder
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			t.Log(sc.Text())
			all.WriteString(sc.Text() + "\n")
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	pw.Close()
	wg.Wait()
	if err != nil {
		t.Fatalf("%s %v in %s: %v", name, args, dir, err)
	}
	return all.String()
}
