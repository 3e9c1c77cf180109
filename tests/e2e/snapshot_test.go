package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A sandbox's state that only a faithful restore keeps: a file on disk, a
// process and a value that lives only in that process's memory. The
// process counts in memory and reports on request through a FIFO; its pid
// and start time (ticks since boot) say it is the same process.
const (
	statefulScript = `mkfifo /run/ask /run/tell
nohup python3 -c '
import os
n = 0
while True:
    with open("/run/ask") as f:
        f.read()
    n += 1
    with open("/run/tell", "w") as f:
        f.write("%d %d" % (os.getpid(), n))
' >/dev/null 2>&1 &
echo $! > /root/pid
echo kept-on-disk > /root/file`
	askState = `echo > /run/ask; cat /run/tell; echo; cat /root/file; cut -d' ' -f22 /proc/$(cat /root/pid)/stat`
)

// guestState asks the stateful process for its next count and returns
// what the sandbox says: "<pid> <count>\n<file>\n<start time>".
func guestState(t testing.TB, s *server, key hdr, id string) (pid, count int, rest string) {
	t.Helper()
	r := s.exec(key, id, "bash", "-c", askState)
	lines := strings.SplitN(r.Stdout, "\n", 2)
	if r.ExitCode != 0 || len(lines) != 2 {
		t.Fatalf("asking for state: %+v", r)
	}
	if _, err := fmt.Sscanf(lines[0], "%d %d", &pid, &count); err != nil {
		t.Fatalf("state %q: %v", lines[0], err)
	}
	return pid, count, lines[1]
}

func startStateful(t testing.TB, s *server, key hdr, id string) (pid int, rest string) {
	t.Helper()
	if r := s.exec(key, id, "bash", "-c", statefulScript); r.ExitCode != 0 {
		t.Fatalf("start stateful process: %+v", r)
	}
	pid, n, rest := guestState(t, s, key, id)
	if n != 1 || !strings.HasPrefix(rest, "kept-on-disk\n") {
		t.Fatalf("fresh state: pid %d count %d rest %q", pid, n, rest)
	}
	return pid, rest
}

type template struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	VCPUs     *int   `json:"vcpus"`
	MemoryMB  *int   `json:"memory_mb"`
	SizeBytes int64  `json:"size_bytes"`
}

// TestPauseResume: a paused sandbox holds no VM and refuses work; resumed,
// its file, process and in-memory state are as they were, 20 times over.
func TestPauseResume(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir)
	key := s.account("pause@example.com")
	before := snapshotHost(t, dataDir)

	sb := s.create(key, map[string]any{"timeout_sec": 10})
	pid, rest := startStateful(t, s, key, sb.ID)
	want := 1
	cycles := 20
	if testing.Short() {
		cycles = 3
	}
	// An exec running when the sandbox is paused is cut off with a 409.
	cutOff := make(chan int, 1)
	go func() {
		code, _ := s.do("POST", "/v1/sandboxes/"+sb.ID+"/exec", key, map[string]any{"cmd": "sleep 60"})
		cutOff <- code
	}()
	time.Sleep(2 * time.Second)
	for i := range cycles {
		var got sandbox
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, &got)
		if got.Status != "paused" {
			t.Fatalf("cycle %d: paused sandbox is %s", i, got.Status)
		}
		if i == 0 {
			if code := <-cutOff; code != 409 {
				t.Errorf("an exec that a pause cut off = %d, want 409", code)
			}
			if n := vmsOf(t, dataDir, sb.ID); n != 0 {
				t.Fatalf("a paused sandbox still has %d VMs", n)
			}
			for _, path := range []string{"exec", "files/read", "pause"} {
				if code, body := s.do("POST", "/v1/sandboxes/"+sb.ID+"/"+path, key, map[string]any{"cmd": "true", "path": "/root/file"}); code != 409 {
					t.Errorf("%s on a paused sandbox = %d %s, want 409", path, code, body)
				}
			}
			// Longer than its inactivity timeout: no timeout ends a paused sandbox.
			time.Sleep(13 * time.Second)
			s.must(200, "GET", "/v1/sandboxes/"+sb.ID, key, nil, &got)
			if got.Status != "paused" {
				t.Fatalf("a paused sandbox past its timeout is %s", got.Status)
			}
		}
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/resume", key, nil, &got)
		if got.Status != "running" || got.HostIP == "" {
			t.Fatalf("cycle %d: resumed %+v", i, got)
		}
		want++
		gotPID, n, gotRest := guestState(t, s, key, sb.ID)
		if gotPID != pid || n != want || gotRest != rest {
			t.Fatalf("cycle %d: state pid %d count %d %q, want pid %d count %d %q", i, gotPID, n, gotRest, pid, want, rest)
		}
		if i == 0 {
			if code, _ := s.do("POST", "/v1/sandboxes/"+sb.ID+"/resume", key, nil); code != 409 {
				t.Errorf("resume of a running sandbox = %d, want 409", code)
			}
			// The guest's clock is now, not the moment of the pause.
			r := s.exec(key, sb.ID, "date", "+%s")
			guest, _ := strconv.ParseInt(strings.TrimSpace(r.Stdout), 10, 64)
			if d := time.Now().Unix() - guest; d < -2 || d > 2 {
				t.Errorf("guest clock is %ds off after resume", d)
			}
		}
	}
	// A paused sandbox cannot become a template, and destroying it
	// removes its files.
	s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
	if code, _ := s.do("POST", "/v1/snapshots", key, map[string]any{"sandbox_id": sb.ID}); code != 409 {
		t.Errorf("snapshot of a paused sandbox = %d, want 409", code)
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	eventually(t, 30*time.Second, func() string { return before.diff(snapshotHost(t, dataDir)) })
}

// TestSnapshotTemplates: a template made of a sandbox carries its file and
// process into new sandboxes; names, overwrite and delete behave as the
// spec says; a sandbox outlives the template it came from, paused and
// resumed too.
func TestSnapshotTemplates(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir)
	key := s.account("snap@example.com")
	other := s.account("snap-other@example.com")
	before := snapshotHost(t, dataDir)

	src := s.create(key, map[string]any{})
	pid, rest := startStateful(t, s, key, src.ID)
	var tmpl template
	s.must(201, "POST", "/v1/snapshots", key, map[string]any{"sandbox_id": src.ID, "name": "prepared"}, &tmpl)
	if tmpl.Name != "prepared" || tmpl.Type != "snapshot" || tmpl.VCPUs == nil || *tmpl.VCPUs != 1 ||
		tmpl.MemoryMB == nil || *tmpl.MemoryMB != 512 || tmpl.SizeBytes <= 0 || tmpl.SizeBytes > 512<<20 {
		t.Fatalf("template %+v", tmpl)
	}
	var got sandbox
	s.must(200, "GET", "/v1/sandboxes/"+src.ID, key, nil, &got)
	if got.Status != "stopped" {
		t.Errorf("snapshotted sandbox is %s, want stopped", got.Status)
	}
	var list []template
	s.must(200, "GET", "/v1/snapshots?type=snapshot", key, nil, &list)
	if len(list) != 1 || list[0].Name != "prepared" {
		t.Errorf("snapshot list %+v", list)
	}
	s.must(200, "GET", "/v1/snapshots?type=snapshot", other, nil, &list)
	if len(list) != 0 {
		t.Errorf("another team sees %+v", list)
	}
	if code, _ := s.do("POST", "/v1/sandboxes", other, map[string]any{"template": "prepared"}); code != 400 {
		t.Errorf("another team creating from the template = %d, want 400", code)
	}

	// Two sandboxes from it: each has the process, with the count it had,
	// and goes on counting on its own.
	// The first create from it restores it; the agent then keeps one
	// restored, which the second create takes.
	a := s.create(key, map[string]any{"template": "prepared"})
	s.waitPoolReadyFor(t, "prepared", 1)
	b := s.create(key, map[string]any{"template": "prepared", "vcpus": 1, "memory_mb": 512})
	if dir := filepath.Base(runDirOf(t, dataDir, b.ID)); !strings.HasPrefix(dir, poolPrefix) {
		t.Errorf("the second create from a template did not take the pool's sandbox: runs in %s", dir)
	}
	for _, id := range []string{a.ID, b.ID} {
		gotPID, n, gotRest := guestState(t, s, key, id)
		if gotPID != pid || n != 2 || gotRest != rest {
			t.Errorf("sandbox from template: pid %d count %d %q, want pid %d count 2 %q", gotPID, n, gotRest, pid, rest)
		}
	}
	if _, n, _ := guestState(t, s, key, a.ID); n != 3 {
		t.Errorf("second ask in a: count %d, want 3", n)
	}
	if _, n, _ := guestState(t, s, key, b.ID); n != 3 {
		t.Errorf("b saw a's count: %d, want 3", n)
	}
	if r := s.exec(key, a.ID, "hostname"); strings.TrimSpace(r.Stdout) != a.ID {
		t.Errorf("hostname of a restored sandbox: %q", r.Stdout)
	}
	if code, body := s.do("POST", "/v1/sandboxes", key, map[string]any{"template": "prepared", "memory_mb": 1024}); code != 400 {
		t.Errorf("other sizes from a snapshot template = %d %s, want 400", code, body)
	}

	// Names: taken is 409, overwrite replaces, bad names are 400.
	c := s.create(key, map[string]any{})
	s.exec(key, c.ID, "sh -c 'echo second > /root/file'")
	if code, _ := s.do("POST", "/v1/snapshots", key, map[string]any{"sandbox_id": c.ID, "name": "prepared"}); code != 409 {
		t.Errorf("taken name = %d, want 409", code)
	}
	for _, bad := range []string{"../escape", "a/b", ".hidden", strings.Repeat("x", 64)} {
		if code, _ := s.do("POST", "/v1/snapshots", key, map[string]any{"sandbox_id": c.ID, "name": bad}); code != 400 {
			t.Errorf("name %q = %d, want 400", bad, code)
		}
	}
	// The pool has a sandbox of the template about to be replaced: a
	// create must not get it.
	s.waitPoolReadyFor(t, "prepared", 2)
	s.must(201, "POST", "/v1/snapshots?overwrite=true", key, map[string]any{"sandbox_id": c.ID, "name": "prepared"}, &tmpl)
	d := s.create(key, map[string]any{"template": "prepared"})
	if r := s.exec(key, d.ID, "cat /root/file"); r.Stdout != "second\n" {
		t.Errorf("after overwrite: %+v", r)
	}
	// A template of a sandbox that came from a template, auto-named.
	var auto template
	s.must(201, "POST", "/v1/snapshots", key, map[string]any{"sandbox_id": a.ID}, &auto)
	if auto.Name == "" {
		t.Error("auto-named template has no name")
	}
	e := s.create(key, map[string]any{"template": auto.Name})
	if _, n, _ := guestState(t, s, key, e.ID); n != 4 {
		t.Errorf("template of a template: count %d, want 4", n)
	}

	// Delete: sandboxes made from the template keep working, through a
	// pause and resume too; deleting again is 404.
	s.must(204, "DELETE", "/v1/snapshots/prepared", key, nil, nil)
	s.must(204, "DELETE", "/v1/snapshots/"+auto.Name, key, nil, nil)
	if code, _ := s.do("DELETE", "/v1/snapshots/prepared", key, nil); code != 404 {
		t.Errorf("second delete = %d, want 404", code)
	}
	if code, _ := s.do("POST", "/v1/sandboxes", key, map[string]any{"template": "prepared"}); code != 400 {
		t.Errorf("create from a deleted template = %d, want 400", code)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "templates")); err == nil {
		if left, _ := filepath.Glob(filepath.Join(dataDir, "templates", "*", "*")); len(left) != 0 {
			t.Errorf("template files left after delete: %v", left)
		}
	}
	for _, id := range []string{b.ID, d.ID, e.ID} {
		s.must(200, "POST", "/v1/sandboxes/"+id+"/pause", key, nil, nil)
		s.must(200, "POST", "/v1/sandboxes/"+id+"/resume", key, nil, nil)
	}
	if _, n, _ := guestState(t, s, key, b.ID); n != 4 {
		t.Errorf("b after its template was deleted and a pause: count %d, want 4", n)
	}
	if r := s.exec(key, d.ID, "cat /root/file"); r.Stdout != "second\n" {
		t.Errorf("d after its template was deleted: %+v", r)
	}
	if _, n, _ := guestState(t, s, key, e.ID); n != 5 {
		t.Errorf("e after its template was deleted: count %d, want 5", n)
	}
	for _, id := range []string{b.ID, d.ID, e.ID} {
		s.must(204, "DELETE", "/v1/sandboxes/"+id, key, nil, nil)
	}
	eventually(t, 30*time.Second, func() string { return before.diff(snapshotHost(t, dataDir)) })
}

// TestPausedSurvivesAgentRestart: the agent killed while a sandbox is
// paused; a new agent resumes it.
func TestPausedSurvivesAgentRestart(t *testing.T) {
	a := startApart(t, "pause-token")
	s := a.s
	key := s.account("pause-restart@example.com")

	sb := s.create(key, map[string]any{})
	pid, rest := startStateful(t, s, key, sb.ID)
	s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
	a.restartAgent()
	// And the control plane too.
	s.stop()
	s = a.startServer()
	var got sandbox
	s.must(200, "GET", "/v1/sandboxes/"+sb.ID, key, nil, &got)
	if got.Status != "paused" {
		t.Fatalf("after restarts the sandbox is %s", got.Status)
	}
	s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/resume", key, nil, nil)
	if gotPID, n, gotRest := guestState(t, s, key, sb.ID); gotPID != pid || n != 2 || gotRest != rest {
		t.Fatalf("after restarts: pid %d count %d %q, want pid %d count 2 %q", gotPID, n, gotRest, pid, rest)
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
}

// TestCreatesRestore: a create at the default sizes restores the base's
// warm snapshot (its guest never runs init, which prints on the console at
// boot); one at other sizes boots. Both work.
func TestCreatesRestore(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir)
	key := s.account("warm@example.com")
	booted := func(id string) bool {
		b, err := os.ReadFile(filepath.Join(runDirOf(t, dataDir, id), "console.log"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(b), "envd init done")
	}
	for _, c := range []struct {
		body map[string]any
		boot bool
	}{{map[string]any{}, false}, {map[string]any{"memory_mb": 256}, true}} {
		sb := s.create(key, c.body)
		if got := booted(sb.ID); got != c.boot {
			t.Errorf("create %v: booted %v, want %v", c.body, got, c.boot)
		}
		if r := s.exec(key, sb.ID, "sh -c 'hostname; free -m | awk \"/Mem/{print \\$2}\"'"); !strings.HasPrefix(r.Stdout, sb.ID+"\n") {
			t.Errorf("create %v: %+v", c.body, r)
		}
		s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	}
}
