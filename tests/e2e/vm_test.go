package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment of the VM tests.
const (
	// envRequireVMs=1 makes the VM tests fail, not skip, when this host
	// cannot run them (CI sets it).
	envRequireVMs = "WRENN_REQUIRE_VMS"
	// envImagesDir is where guest images are built once and shared by
	// every server the tests start.
	envImagesDir = "WRENN_IMAGES_DIR"
)

var (
	imagesOnce sync.Once
	imagesErr  error
	imagesDir  string
)

// requireVMs skips (or, under WRENN_REQUIRE_VMS=1, fails) unless this host
// can run sandboxes, and builds the guest images once.
func requireVMs(t testing.TB) string {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "VM tests need root (network namespaces, TAP devices)"
	default:
		if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
			why = "qemu-system-x86_64 is not installed"
		}
	}
	if why != "" {
		if os.Getenv(envRequireVMs) == "1" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	imagesOnce.Do(func() {
		imagesDir = os.Getenv(envImagesDir)
		if imagesDir == "" {
			imagesDir = "/var/tmp/wrenn-test-images"
		}
		cmd := exec.Command(wrennBin, "image", "build", "--data-dir", filepath.Join(os.TempDir(), "wrenn-image-build"))
		cmd.Env = append(os.Environ(), envImagesDir+"="+imagesDir, "WRENN_SOURCE_DIR="+repoRoot())
		out, err := cmd.CombinedOutput()
		if err != nil {
			imagesErr = fmt.Errorf("wrenn image build: %v\n%s", err, out)
		}
	})
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return imagesDir
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// startVMServer starts `wrenn server` with an in-process host agent.
func startVMServer(t testing.TB, dataDir string, env ...string) *server {
	t.Helper()
	images := requireVMs(t)
	env = append([]string{envImagesDir + "=" + images, "WRENN_SOURCE_DIR=" + repoRoot()}, env...)
	// VMs outlive their agent by design; a test that fails before
	// destroying its sandboxes must not leave them running. Registered
	// first, this runs after the server has stopped.
	t.Cleanup(func() { killVMs(t, dataDir) })
	s := startServer(t, dataDir, env...)
	if !slices.Contains(env, "WRENN_WARM_POOL=0") {
		s.waitPoolReady(t, 1)
	}
	return s
}

// waitPoolReady waits until the agent's warm pool has made n sandboxes of
// the base "minimal" ready since the server started, so that what a test
// measures or compares starts from a settled host.
func (s *server) waitPoolReady(t testing.TB, n int) {
	t.Helper()
	s.waitPoolReadyFor(t, "minimal", n)
}

// waitPoolReadyFor is waitPoolReady for the template named template.
func (s *server) waitPoolReadyFor(t testing.TB, template string, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for poolReady(s.logs.String(), template) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the warm pool had not made %d sandboxes of %s ready within 2 minutes\n%s", n, template, s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// poolReady counts the warm pool's sandboxes of template made ready in an
// agent's log.
func poolReady(logs, template string) int {
	n := 0
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "warm pool: sandbox ready") && strings.Contains(l, " template="+template+" ") {
			n++
		}
	}
	return n
}

// killVMs kills every QEMU process of the installation at dataDir.
func killVMs(t testing.TB, dataDir string) {
	for _, cmdline := range snapshotHost(t, dataDir).qemus {
		t.Logf("killing a VM the test left: %.200s", cmdline)
	}
	_ = exec.Command("pkill", "-KILL", "-f", "qemu-system.*"+dataDir).Run()
}

// account signs up a fresh user and returns an API key header.
func (s *server) account(email string) hdr {
	s.tb.Helper()
	var a session
	s.must(201, "POST", "/v1/auth/signup", nil, map[string]string{"email": email, "password": "sandbox-tests"}, &a)
	var k apiKey
	s.must(201, "POST", "/v1/api-keys", bearer(a.Token), map[string]string{"name": "e2e"}, &k)
	return hdr{"X-API-Key": *k.Key}
}

type sandbox struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Template string `json:"template"`
	GuestIP  string `json:"guest_ip"`
	HostIP   string `json:"host_ip"`
}

type execResult struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode int    `json:"exit_code"`
	Encoding string `json:"encoding"`
}

func (s *server) create(key hdr, body map[string]any) sandbox {
	s.tb.Helper()
	var sb sandbox
	s.must(201, "POST", "/v1/sandboxes", key, body, &sb)
	return sb
}

func (s *server) exec(key hdr, id string, cmd string, args ...string) execResult {
	s.tb.Helper()
	body := map[string]any{"cmd": cmd}
	if len(args) > 0 {
		body["args"] = args
	}
	var r execResult
	s.must(200, "POST", "/v1/sandboxes/"+id+"/exec", key, body, &r)
	return r
}

// hostState is what a sandbox could leave behind on the host.
type hostState struct {
	qemus   []string // command lines of QEMU processes
	netns   []string
	links   []string
	runDirs []string
	// Of the above, those whose run directory has the warm pool's name:
	// ready members, or sandboxes a create took from the pool.
	poolQemus, poolDirs int
}

// poolPrefix starts the names of run directories born in the warm pool.
const poolPrefix = "pool-"

func snapshotHost(t testing.TB, dataDir string) hostState {
	t.Helper()
	var st hostState
	poolDir := []byte(filepath.Join(dataDir, "sandboxes", poolPrefix))
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("qemu-system")) || !bytes.Contains(b, []byte(dataDir)) {
			continue
		}
		if bytes.Contains(b, poolDir) {
			st.poolQemus++
			continue
		}
		st.qemus = append(st.qemus, strings.ReplaceAll(string(b), "\x00", " "))
	}
	ns, _ := os.ReadDir("/run/netns")
	for _, e := range ns {
		st.netns = append(st.netns, e.Name())
	}
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			st.links = append(st.links, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	runs, _ := os.ReadDir(filepath.Join(dataDir, "sandboxes"))
	for _, e := range runs {
		if strings.HasPrefix(e.Name(), poolPrefix) {
			st.poolDirs++
			continue
		}
		st.runDirs = append(st.runDirs, e.Name())
	}
	sort.Strings(st.links)
	return st
}

// diff describes how after differs from before, or "" if it does not.
// Run it when every sandbox the test made is gone: what the warm pool
// holds then must be its ready members alone, each a VM with its run
// directory, no more than the pool's size.
func (before hostState) diff(after hostState) string {
	var b strings.Builder
	cmp := func(what string, x, y []string) {
		if strings.Join(x, "\n") != strings.Join(y, "\n") {
			fmt.Fprintf(&b, "%s: before %q, after %q\n", what, x, y)
		}
	}
	// The agent keeps a pool of ready network slots that it refills with
	// whatever indexes are free, so namespaces and links are compared by
	// count; processes and run directories must match exactly. A network
	// slot of each warm pool member is counted as the agent's own pool.
	count := func(what string, x, y []string, plus int) {
		if len(x)+plus != len(y) {
			fmt.Fprintf(&b, "%s: %d before %q, %d after %q (warm pool %d → %d)\n", what, len(x), x, len(y), y,
				before.poolQemus, after.poolQemus)
		}
	}
	pool := after.poolQemus - before.poolQemus
	cmp("qemu processes", before.qemus, after.qemus)
	count("network namespaces", before.netns, after.netns, pool)
	count("links", before.links, after.links, pool)
	cmp("sandbox run dirs", before.runDirs, after.runDirs)
	if after.poolQemus != after.poolDirs || after.poolQemus > maxPoolMembers {
		fmt.Fprintf(&b, "warm pool: %d VMs and %d run dirs, want the same number, at most %d\n",
			after.poolQemus, after.poolDirs, maxPoolMembers)
	}
	return b.String()
}

// maxPoolMembers is the most members the warm pool keeps by default
// (agent.DefaultPoolMax): it keeps one of each base and grows with bursts
// of creates (issue 14).
const maxPoolMembers = 32

// runDirOf finds the run directory of sandbox id by the record in it: a
// sandbox a create took from the warm pool keeps its pool name.
func runDirOf(t testing.TB, dataDir, id string) string {
	t.Helper()
	records, _ := filepath.Glob(filepath.Join(dataDir, "sandboxes", "*", "state.json"))
	for _, r := range records {
		var st struct {
			ID string `json:"id"`
		}
		if b, err := os.ReadFile(r); err == nil && json.Unmarshal(b, &st) == nil && st.ID == id {
			return filepath.Dir(r)
		}
	}
	t.Fatalf("no run directory records sandbox %s", id)
	return ""
}

// qemuPIDs lists the QEMU processes of the sandbox whose run directory is
// dir.
func qemuPIDs(dir string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("qemu-system")) && bytes.Contains(b, []byte(dir+"/")) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// vmsOf counts the QEMU processes of sandbox id.
func vmsOf(t testing.TB, dataDir, id string) int {
	t.Helper()
	return len(qemuPIDs(runDirOf(t, dataDir, id)))
}

// eventually polls f until it returns "" or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var _ = context.Background
