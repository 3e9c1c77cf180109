package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/disk"
)

// Templates and paused sandboxes travel between hosts (issue 13): three
// joined agents, each in its own network namespace with its own data dir,
// share one store directory (WRENN_SHARED_DIR), on another file system
// than their data dirs (tmpfs), as an NFS mount would be. A sandbox paused
// on host 0 resumes on host 1 after host 0's agent is killed; a template
// made on host 0 starts sandboxes on hosts 1 and 2; deleting it removes it
// from the store.

// TestFleetTravel: a paused sandbox's file, process and in-memory state
// come back on another host once its own is lost; a snapshot template made
// on one host creates sandboxes on the others; its delete reaches the
// store.
func TestFleetTravel(t *testing.T) {
	requireVMs(t)
	shared, err := os.MkdirTemp("/dev/shm", "wrshared")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })

	// Three hosts, each tagged hN so that a create can be sent to one.
	f := startFleet(t, 0, 3, []string{"WRENN_SHARED_DIR=" + shared}, "WRENN_HOST_DEAD_AFTER=5s")
	s, jwt, key, agents := f.s, f.jwt, f.key, f.agents
	for i := range agents {
		f.tag(i, tagOf(i))
	}
	storeID, err := os.ReadFile(filepath.Join(shared, "store-id"))
	if err != nil || !strings.HasPrefix(string(storeID), "store-") {
		t.Fatalf("the shared store's identity: %q %v", storeID, err)
	}
	hostOf := f.hostOf
	// createOn creates a sandbox on host i (its tag) from template; the
	// server learns base templates from the agents it dials, so the first
	// create may come before it has.
	createOn := f.createOn

	// A snapshot template made on host 0 starts sandboxes on hosts 1 and 2
	// with the file it had; it lives in the store, not in host 0's data dir.
	src := createOn(0, "minimal")
	if r := s.exec(key, src.ID, "bash", "-c", "echo made-on-host-0 > /root/tmpl-file && sync"); r.ExitCode != 0 {
		t.Fatalf("write a file: %+v", r)
	}
	var tmpl template
	s.must(201, "POST", "/v1/snapshots", key, map[string]any{"sandbox_id": src.ID, "name": "travelling"}, &tmpl)
	inStore, _ := filepath.Glob(filepath.Join(shared, "templates", "*", "travelling", "meta.json"))
	local, _ := filepath.Glob(filepath.Join(agents[0].dataDir, "templates", "*", "travelling"))
	if len(inStore) != 1 || len(local) != 0 {
		t.Fatalf("the template is in the store %v and in host 0's data dir %v", inStore, local)
	}
	var fromTmpl []sandbox
	for _, i := range []int{1, 2} {
		sb := createOn(i, "travelling")
		if r := s.exec(key, sb.ID, "cat", "/root/tmpl-file"); r.ExitCode != 0 || r.Stdout != "made-on-host-0\n" {
			t.Fatalf("a sandbox on host %d from the template: %+v", i, r)
		}
		fromTmpl = append(fromTmpl, sb)
	}
	s.must(204, "DELETE", "/v1/snapshots/travelling", key, nil, nil)
	if left, _ := filepath.Glob(filepath.Join(shared, "templates", "*", "travelling")); len(left) != 0 {
		t.Fatalf("the deleted template is still in the store: %v", left)
	}
	if code, out := s.do("POST", "/v1/sandboxes", key, map[string]any{"template": "travelling"}); code != 400 {
		t.Fatalf("create from the deleted template = %d: %s", code, out)
	}
	// Sandboxes made from it outlive it.
	for _, sb := range fromTmpl {
		if r := s.exec(key, sb.ID, "cat", "/root/tmpl-file"); r.ExitCode != 0 || r.Stdout != "made-on-host-0\n" {
			t.Fatalf("a sandbox of the deleted template: %+v", r)
		}
		s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	}

	// A sandbox on host 0 with a file, a process counting in memory and a
	// background process started through the process API, paused: it
	// moves to the store and host 0 no longer has it.
	sb := createOn(0, "minimal")
	pid, rest := startStateful(t, s, key, sb.ID)
	var bg struct {
		PID int `json:"pid"`
	}
	s.must(202, "POST", "/v1/sandboxes/"+sb.ID+"/exec", key, map[string]any{
		"cmd": "sleep", "args": []string{"3600"}, "background": true, "tag": "sleeper"}, &bg)
	if bg.PID <= 1 {
		t.Fatalf("background exec: pid %d", bg.PID)
	}
	s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
	if _, err := os.Stat(filepath.Join(shared, "paused", sb.ID, "state.json")); err != nil {
		t.Fatalf("the paused sandbox is not in the store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(agents[0].dataDir, "sandboxes", sb.ID)); !os.IsNotExist(err) {
		t.Fatalf("host 0 still has the paused sandbox's run dir: %v", err)
	}

	// Host 0 is lost (its agent killed) and host 2 drained: the resume
	// lands on host 1, with everything as it was.
	agents[0].proc.kill()
	f.waitHost(0, "unreachable", 15*time.Second)
	s.must(200, "POST", "/v1/hosts/"+agents[2].hostID+"/drain", jwt, nil, nil)
	var resumed sandbox
	s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/resume", key, nil, &resumed)
	if resumed.Status != "running" || hostOf(resumed) != 1 {
		t.Fatalf("resumed %+v, want running on host 1", resumed)
	}
	s.must(200, "POST", "/v1/hosts/"+agents[2].hostID+"/undrain", jwt, nil, nil)
	gotPID, n, gotRest := guestState(t, s, key, sb.ID)
	if gotPID != pid || n != 2 || gotRest != rest {
		t.Fatalf("state after the move: pid %d count %d %q, want pid %d count 2 %q", gotPID, n, gotRest, pid, rest)
	}
	var list struct {
		Processes []struct {
			PID int    `json:"pid"`
			Tag string `json:"tag"`
		} `json:"processes"`
	}
	s.must(200, "GET", "/v1/sandboxes/"+sb.ID+"/processes", key, nil, &list)
	if len(list.Processes) != 1 || list.Processes[0].PID != bg.PID || list.Processes[0].Tag != "sleeper" {
		t.Fatalf("processes after the move: %+v, want pid %d", list, bg.PID)
	}
	if r := s.exec(key, sb.ID, "bash", "-c", "kill -0 "+itoa(bg.PID)+" && cat /proc/"+itoa(bg.PID)+"/cmdline | tr '\\0' ' '"); r.ExitCode != 0 || r.Stdout != "sleep 3600 " {
		t.Fatalf("the background process after the move: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(shared, "paused", sb.ID)); !os.IsNotExist(err) {
		t.Fatalf("the resumed sandbox is still in the store: %v", err)
	}

	// Paused again on host 1 and resumed: wherever it lands, it goes on.
	s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
	s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/resume", key, nil, &resumed)
	if h := hostOf(resumed); h == 0 {
		t.Fatal("a resume landed on the lost host")
	}
	if gotPID, n, _ := guestState(t, s, key, sb.ID); gotPID != pid || n != 3 {
		t.Fatalf("state after a second move: pid %d count %d", gotPID, n)
	}
	// Destroyed paused, it leaves the store.
	s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
	s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	if left, _ := filepath.Glob(filepath.Join(shared, "paused", "*")); len(left) != 0 {
		t.Fatalf("the store still holds paused sandboxes: %v", left)
	}

	// Host 0's agent back (its credentials): it frees the network slots
	// its killed predecessor left, and takes nothing from the store.
	agents[0].start()
	f.waitHost(0, "online", 15*time.Second)
	if runs, _ := filepath.Glob(filepath.Join(agents[0].dataDir, "sandboxes", "*")); len(runs) != 0 {
		t.Fatalf("host 0 holds run dirs after it came back: %v", runs)
	}
	t.Logf("the sandbox went from host 0 to host 1 and on to host %d", hostOf(resumed))

	// Only teams' templates and paused sandboxes go to the store: the
	// hosts' warm snapshots, in the images directory (shared by every
	// test run here), stay over the hosts' own images.
	warm, _ := filepath.Glob(filepath.Join(requireVMs(t), "warm", "*"))
	for _, d := range warm {
		b, err := disk.Backing(filepath.Join(d, "disk.qcow2"))
		meta, _ := os.ReadFile(filepath.Join(d, "meta.json"))
		if err == nil && (strings.HasPrefix(b, shared) || strings.Contains(string(meta), shared)) {
			t.Errorf("warm snapshot %s names the shared store: over %s, meta %s", d, b, meta)
		}
	}
}

func tagOf(i int) string { return "h" + itoa(i) }

func itoa(i int) string { return strconv.Itoa(i) }
