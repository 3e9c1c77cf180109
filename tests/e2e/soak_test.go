package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// envSoakCycles sets how many cycles TestSoak runs; scripts/soak runs
// 1,000, CI the default.
const envSoakCycles = "WRENN_SOAK_CYCLES"

// maxSoakGrowth is how much the agent's and the server's resident memory
// may grow over a long soak, once warmed up.
const maxSoakGrowth = 0.10

// TestSoak runs cycles of create → exec → pause → resume → destroy
// through a control plane and a host agent in processes of their own, and
// reports what they leave behind (processes, namespaces, links, run
// directories, templates, open files, records) and how the memory of each
// process grows. Leaks fail the test at any length; memory growth past
// maxSoakGrowth fails it in runs of 200 cycles or more, where it is more
// than the garbage collector's pace.
func TestSoak(t *testing.T) {
	cycles := 40
	if v := os.Getenv(envSoakCycles); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			t.Fatalf("%s=%q: want a number of at least 10", envSoakCycles, v)
		}
		cycles = n
	}
	a := startApart(t, "soak-token")
	s := a.s
	key := s.account("soak@example.com")
	agentPID := func() int { return a.agent.cmd.Process.Pid }
	serverPID := s.cmd.Process.Pid

	cycle := func(i int) {
		t.Helper()
		sb := s.create(key, map[string]any{})
		want := strconv.Itoa(i) + "\n"
		if r := s.exec(key, sb.ID, "echo "+strconv.Itoa(i)); r.Stdout != want {
			t.Fatalf("cycle %d: exec: %+v", i, r)
		}
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/resume", key, nil, nil)
		if r := s.exec(key, sb.ID, "echo "+strconv.Itoa(i)); r.Stdout != want {
			t.Fatalf("cycle %d: exec after resume: %+v", i, r)
		}
		s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	}

	// Warm up: connections, pools and caches settle before the baseline.
	warmup := max(5, cycles/10)
	for i := range warmup {
		cycle(i)
	}
	before, beforeFDs := settledHost(t, a.dataDir, agentPID(), serverPID)
	var agentRSS, serverRSS []int64
	sample := func() {
		agentRSS = append(agentRSS, rss(t, agentPID()))
		serverRSS = append(serverRSS, rss(t, serverPID))
	}
	sample()
	start := time.Now()
	every := max(1, cycles/20)
	for i := range cycles {
		cycle(warmup + i)
		if (i+1)%every == 0 {
			sample()
		}
	}
	took := time.Since(start)
	s.client.CloseIdleConnections()

	var list []sandbox
	s.must(200, "GET", "/v1/sandboxes", key, nil, &list)
	if len(list) != 0 {
		t.Errorf("records left: %+v", list)
	}
	eventually(t, 30*time.Second, func() string {
		after := snapshotHost(t, a.dataDir)
		if d := before.diff(after); d != "" {
			return d
		}
		if fds := openFiles(t, agentPID(), serverPID); !slices.Equal(fds, beforeFDs) {
			return fmt.Sprintf("open files: before %q, after %q", beforeFDs, fds)
		}
		if left, _ := filepath.Glob(filepath.Join(a.dataDir, "templates", "*", "*")); len(left) != 0 {
			return fmt.Sprintf("template files: %q", left)
		}
		return ""
	})

	agentFrom, agentTo, agentGrowth := growth(agentRSS)
	serverFrom, serverTo, serverGrowth := growth(serverRSS)
	t.Logf("soak: %d cycles in %s (%.0f ms each) after %d to warm up", cycles, took.Round(time.Second),
		float64(took.Milliseconds())/float64(cycles), warmup)
	t.Logf("soak: agent RSS %.1f → %.1f MiB (%+.1f%%); samples %v", agentFrom, agentTo, 100*agentGrowth, mibs(agentRSS))
	t.Logf("soak: server RSS %.1f → %.1f MiB (%+.1f%%); samples %v", serverFrom, serverTo, 100*serverGrowth, mibs(serverRSS))
	t.Logf("soak: leaks: none (processes, namespaces, links, run directories, templates, open files, records)")
	if cycles >= 200 {
		if agentGrowth > maxSoakGrowth || serverGrowth > maxSoakGrowth {
			t.Errorf("memory grew by %.1f%% (agent) and %.1f%% (server), over %.0f%%\nagent %v\nserver %v",
				100*agentGrowth, 100*serverGrowth, 100*maxSoakGrowth, agentRSS, serverRSS)
		}
	}
}

// settledHost waits until the host stays the same for a second and
// returns it, with the open files of the processes pids.
func settledHost(t testing.TB, dataDir string, pids ...int) (hostState, []string) {
	t.Helper()
	var st hostState
	var fds []string
	eventually(t, 30*time.Second, func() string {
		st, fds = snapshotHost(t, dataDir), openFiles(t, pids...)
		time.Sleep(time.Second)
		if d := st.diff(snapshotHost(t, dataDir)); d != "" {
			return "host not settled: " + d
		}
		if now := openFiles(t, pids...); !slices.Equal(now, fds) {
			return fmt.Sprintf("open files not settled: %q → %q", fds, now)
		}
		return ""
	})
	return st, fds
}

// openFiles lists what the processes pids hold open, but for the store's
// connections (its pool grows to its bound when reads overlap) and
// sockets (idle HTTP connections come and go): "pid→target", sorted (fd
// numbers are reused in any order). A warm pool member's files (the
// console log the agent reads) are named "pool-*": members come and go.
func openFiles(t testing.TB, pids ...int) []string {
	t.Helper()
	var out []string
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			target, _ := os.Readlink(filepath.Join(dir, e.Name()))
			if strings.Contains(target, "wrenn.db") || strings.HasPrefix(target, "socket:") {
				continue
			}
			target = poolDirName.ReplaceAllString(target, "/"+poolPrefix+"*/")
			out = append(out, fmt.Sprintf("%d→%s", pid, target))
		}
	}
	slices.Sort(out)
	return out
}

var poolDirName = regexp.MustCompile(`/` + poolPrefix + `[a-z0-9]+/`)

// rss is a process's resident memory in bytes.
func rss(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for process %d", pid)
	return 0
}

// growth compares the median of the last three samples with the median of
// the first three, in MiB, and returns both and the relative growth.
func growth(samples []int64) (from, to, rel float64) {
	med := func(s []int64) float64 {
		s = slices.Clone(s)
		slices.Sort(s)
		return float64(s[len(s)/2]) / (1 << 20)
	}
	n := min(3, len(samples))
	from, to = med(samples[:n]), med(samples[len(samples)-n:])
	return from, to, to/from - 1
}

// mibs is samples in whole MiB, for the report.
func mibs(samples []int64) []int64 {
	out := make([]int64, len(samples))
	for i, b := range samples {
		out[i] = b >> 20
	}
	return out
}
