package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The README's Go SDK example is examples/quickstart, run here as a new
// user would (go run, against a server, with an API key); every line the
// README shows is a line of that program.
func TestReadmeGoExample(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "examples/quickstart/main.go"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "### Go SDK")
	_, block, ok2 := strings.Cut(after, "```go\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README has no Go SDK example")
	}
	for line := range strings.SplitSeq(block, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.Contains(string(src), l) {
			t.Errorf("README's Go example line %q is not in examples/quickstart/main.go", l)
		}
	}

	s := startVMServer(t, shortTempDir(t))
	key := s.account("readme-go@example.com")
	bin := filepath.Join(t.TempDir(), "quickstart")
	build := exec.Command("go", "build", "-o", bin, "./examples/quickstart")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := exec.Command(bin)
	run.Env = append(os.Environ(), "WRENN_URL="+s.url, "WRENN_API_KEY="+key["X-API-Key"])
	out, err := run.CombinedOutput()
	want := "exit 0: 42\nread back: hello from Go\ntick 1\ntick 2\ntick 3\nstream exit 0\n"
	if err != nil || string(out) != want {
		t.Fatalf("quickstart: %v\n%s\nwant:\n%s", err, out, want)
	}
	// A bad key: the API's words, and a failing exit.
	run = exec.Command(bin)
	run.Env = append(os.Environ(), "WRENN_URL="+s.url, "WRENN_API_KEY=wrn_wrong")
	if out, err := run.CombinedOutput(); err == nil || !strings.Contains(string(out), "invalid API key") {
		t.Errorf("with a bad key: %v\n%s", err, out)
	}
}
