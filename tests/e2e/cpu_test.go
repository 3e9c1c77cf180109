package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuUse is the CPU time, in clock ticks, the parts of a benchmark have
// used: the server (with its in-process agent), every QEMU on the host,
// and the test process (the client).
type cpuUse struct {
	server, client int64
	qemu           map[int]int64
}

func (s *server) cpuUse() cpuUse {
	u := cpuUse{server: cpuTicksOf(s.cmd.Process.Pid), client: cpuTicksOf(os.Getpid()), qemu: map[int]int64{}}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.HasPrefix(string(comm), "qemu-system") {
			u.qemu[pid] = cpuTicksOf(pid)
		}
	}
	return u
}

// since is the CPU time, in milliseconds, each part used from u0 to u:
// QEMUs that ended in between are not counted.
func (u cpuUse) since(u0 cpuUse) (server, qemu, client float64) {
	var q int64
	for pid, t := range u.qemu {
		q += t - u0.qemu[pid]
	}
	return float64(u.server-u0.server) * 10, float64(q) * 10, float64(u.client-u0.client) * 10
}
