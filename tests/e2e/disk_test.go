package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// What the agent charges a sandbox of the default size on the host's disk
// (internal/agent/diskuse.go): its 2 GiB root disk written whole as a
// qcow2 overlay (2048 MiB, 0.5 of tables, 1 of header, rounded up), 512
// MiB of RAM and 8 MiB for its other files.
const (
	rootDiskBytes  = 2 << 30
	defaultWorstMB = 2048 + 2 + 512 + 8
)

// TestDiskFillAndReserve: with the host's disk reserve set so that one
// default sandbox's worst case fits above it and a second's does not, the
// second create is a 503 host_full; the first fills its root disk until
// the guest sees "No space left on device", answers an exec afterwards,
// its overlay on the host stays within the disk's size and tables, and the
// host's free disk never drops below the reserve. Once it is destroyed
// there is room again.
func TestDiskFillAndReserve(t *testing.T) {
	dataDir := shortTempDir(t)
	free := freeMB(t, dataDir)
	// Room for one worst case and 400 MiB more (what else writes to this
	// disk meanwhile, the warm snapshot among it), not for two.
	reserve := free - defaultWorstMB - 400
	if reserve < 0 {
		t.Skipf("%d MiB free under %s: not enough for a sandbox's worst case", free, dataDir)
	}
	s := startVMServer(t, dataDir, "WRENN_WARM_POOL=0", fmt.Sprintf("WRENN_DISK_RESERVE_MB=%d", reserve))
	key := s.account("disk@example.com")

	low := watchFreeDisk(t, dataDir)
	a := s.create(key, map[string]any{"timeout_sec": 0})
	got, out := s.do("POST", "/v1/sandboxes", key, map[string]any{})
	if got != 503 || errorCode(t, out) != "host_full" || !strings.Contains(errorMessage(t, out), "MiB of disk") {
		t.Fatalf("a second sandbox whose worst case does not fit above the reserve: %d %s", got, out)
	}

	var r execResult
	start := time.Now()
	s.must(200, "POST", "/v1/sandboxes/"+a.ID+"/exec", key, map[string]any{
		"cmd": "sh", "args": []string{"-c", "dd if=/dev/zero of=/fill bs=1M 2>&1; sync"}, "timeout_sec": 1200,
	}, &r)
	t.Logf("filled the root disk in %s: %s", time.Since(start).Round(time.Second), strings.TrimSpace(r.Stdout))
	if !strings.Contains(r.Stdout, "No space left on device") {
		t.Fatalf("dd until the disk is full: %+v, want ENOSPC", r)
	}
	if r := s.exec(key, a.ID, "echo", "alive"); r.Stdout != "alive\n" {
		t.Fatalf("exec after the disk filled: %+v", r)
	}
	overlay := filepath.Join(dataDir, "sandboxes", a.ID, "rootfs.qcow2")
	var st syscall.Stat_t
	if err := syscall.Stat(overlay, &st); err != nil {
		t.Fatal(err)
	}
	used, bound := st.Blocks*512, int64(rootDiskBytes+rootDiskBytes/4096+1<<20)
	t.Logf("overlay takes %d MiB of the host's disk", used>>20)
	if used < 1<<30 || used > bound {
		t.Fatalf("overlay of a full 2 GiB root disk takes %d bytes, want between 1 GiB and %d", used, bound)
	}
	if min := low(); min < reserve {
		t.Fatalf("the host's free disk dropped to %d MiB, below the %d MiB reserve", min, reserve)
	} else {
		t.Logf("the host's free disk stayed at or above %d MiB (reserve %d MiB)", min, reserve)
	}

	s.must(204, "DELETE", "/v1/sandboxes/"+a.ID, key, nil, nil)
	b := s.create(key, map[string]any{})
	s.must(204, "DELETE", "/v1/sandboxes/"+b.ID, key, nil, nil)
}

// freeMB is the free disk of path's file system that unprivileged
// writers may use, as the agent measures it.
func freeMB(tb testing.TB, path string) int64 {
	tb.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		tb.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize >> 20
}

// watchFreeDisk samples the free disk of path's file system every 100 ms
// until the test ends; low reports the least seen so far.
func watchFreeDisk(t *testing.T, path string) (low func() int64) {
	var mu sync.Mutex
	least := freeMB(t, path)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var st syscall.Statfs_t
			if syscall.Statfs(path, &st) == nil {
				mu.Lock()
				least = min(least, int64(st.Bavail)*st.Bsize>>20)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
	return func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return least
	}
}

// TestDiskWatch: with the disk overcommitted, a sandbox admitted on a
// promise the host cannot keep fills its disk; once the host's free disk
// falls below the reserve the agent ends it, it reads error, its files are
// gone and the free disk is back above the reserve.
func TestDiskWatch(t *testing.T) {
	dataDir := shortTempDir(t)
	// 800 MiB above the reserve, overcommitted tenfold: the sandbox is
	// admitted, and can write more than there is.
	reserve := freeMB(t, dataDir) - 800
	if reserve < 0 {
		t.Skip("not enough free disk")
	}
	s := startVMServer(t, dataDir, "WRENN_WARM_POOL=0", fmt.Sprintf("WRENN_DISK_RESERVE_MB=%d", reserve),
		"WRENN_DISK_OVERCOMMIT=10")
	key := s.account("diskwatch@example.com")
	a := s.create(key, map[string]any{"timeout_sec": 0})
	// The VM is ended under the command: whatever the answer, it is not
	// the command's.
	s.do("POST", "/v1/sandboxes/"+a.ID+"/exec", key, map[string]any{
		"cmd": "sh", "args": []string{"-c", "dd if=/dev/zero of=/fill bs=1M; sync"}, "timeout_sec": 1200,
	})
	eventually(t, 30*time.Second, func() string {
		var sb sandbox
		s.must(200, "GET", "/v1/sandboxes/"+a.ID, key, nil, &sb)
		if sb.Status != "error" {
			return "the filler is " + sb.Status
		}
		return ""
	})
	if !strings.Contains(s.logs.String(), "ending the sandbox whose files grew most") {
		t.Errorf("no log line says why the sandbox was ended\n%s", s.logs)
	}
	if free := freeMB(t, dataDir); free < reserve {
		t.Errorf("free disk %d MiB is still below the %d MiB reserve after the filler was ended", free, reserve)
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+a.ID, key, nil, nil)
}
