package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers for bursts of concurrent creates against the warm pool that
// follows demand (issue 14): TestWarmPoolBurst and BenchmarkCreateBurst.

// burstResult is one create of a burst: its sandbox, and how long the
// create and its first exec (`true`) took.
type burstResult struct {
	sb      sandboxNetwork
	took    time.Duration
	created time.Duration // of took, until the create answered
	err     error
}

// burst creates len(bodies) sandboxes at once, each as its body asks, and
// runs `true` in each as soon as it is created. Errors are the API's
// words.
func (s *server) burst(key hdr, bodies []map[string]any) []burstResult {
	out := make([]burstResult, len(bodies))
	var wg sync.WaitGroup
	for i, body := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r := &out[i]
			code, resp, err := s.send("POST", "/v1/sandboxes", key, body)
			if err == nil && code != 201 {
				err = fmt.Errorf("create = %d: %s", code, resp)
			}
			if err == nil {
				err = json.Unmarshal(resp, &r.sb)
			}
			if err != nil {
				r.err = err
				return
			}
			r.created = time.Since(start)
			code, resp, err = s.send("POST", "/v1/sandboxes/"+r.sb.ID+"/exec", key, map[string]any{"cmd": "true"})
			if err == nil && code != 200 {
				err = fmt.Errorf("exec = %d: %s", code, resp)
			}
			var res execResult
			if err == nil {
				if err = json.Unmarshal(resp, &res); err == nil && res.ExitCode != 0 {
					err = fmt.Errorf("exec true: %+v", res)
				}
			}
			r.took, r.err = time.Since(start), err
		}()
	}
	wg.Wait()
	return out
}

// destroyAll destroys the sandboxes of a burst, all at once.
func (s *server) destroyAll(tb testing.TB, key hdr, rs []burstResult) {
	tb.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(rs))
	for i, r := range rs {
		if r.sb.ID == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, out, err := s.send("DELETE", "/v1/sandboxes/"+r.sb.ID, key, nil)
			if err == nil && code != 204 {
				err = fmt.Errorf("destroy %s = %d: %s", r.sb.ID, code, out)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
}

var poolLine = regexp.MustCompile(`warm pool: sandbox ready.*template=(\S+) ready=(\d+) target=(\d+)`)

// poolLevel is what the last "sandbox ready" line of template in logs
// says: members ready and the pool's target for it.
func poolLevel(logs, template string) (ready, target int) {
	for _, l := range strings.Split(logs, "\n") {
		if m := poolLine.FindStringSubmatch(l); m != nil && m[1] == template {
			ready, _ = strconv.Atoi(m[2])
			target, _ = strconv.Atoi(m[3])
		}
	}
	return ready, target
}

// waitPoolLevel waits until the pool, in the log written since offset,
// says it has n members of template ready, and returns the log's length
// then.
func (s *server) waitPoolLevel(tb testing.TB, template string, offset, n int) int {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		logs := s.logs.String()
		if ready, _ := poolLevel(logs[offset:], template); ready >= n {
			return len(logs)
		}
		if time.Now().After(deadline) {
			ready, target := poolLevel(logs[offset:], template)
			tb.Fatalf("the warm pool had %d of %d members of %s ready after 5 minutes, want %d\n%s", ready, target, template, n, logs[offset:])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// poolProcs are the QEMU processes of the warm pool's unclaimed members.
func poolProcs(tb testing.TB, dataDir string) []int {
	var pids []int
	for _, dir := range unclaimed(tb, dataDir) {
		pids = append(pids, qemuPIDs(dir)...)
	}
	return pids
}

// rssMiB is the resident memory of the processes pids.
func rssMiB(pids []int) float64 {
	var kb int64
	for _, pid := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				kb += n
			}
		}
	}
	return float64(kb) / 1024
}

// idleCPU is the share of one core the processes pids use over window,
// as a percentage (clock ticks of 10 ms, Linux's USER_HZ).
func idleCPU(pids []int, window time.Duration) float64 {
	before := cpuTicksOf(pids...)
	time.Sleep(window)
	return float64(cpuTicksOf(pids...)-before) * 10 / float64(window.Milliseconds()) * 100
}
