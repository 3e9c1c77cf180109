package agent

import (
	"os"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/layout"
)

// fixedHost is a host of 2 cores and 5 GiB of RAM whose free disk is
// *free MiB.
func fixedHost(free *int64) *HostResources {
	return &HostResources{
		Cores:    func() int { return 2 },
		MemoryMB: func() (int, error) { return 5120, nil },
		FreeMB:   func(string) (int64, error) { return *free, nil },
	}
}

func TestAdmit(t *testing.T) {
	free := int64(10000)
	for _, tc := range []struct {
		name string
		cfg  AdmissionConfig
		used capacity
		n    need
		free int64
		want string // "" admits
	}{
		{"fits", AdmissionConfig{}, capacity{VCPUs: 6, MemoryMB: 2048}, need{2, 1024}, 10000, ""},
		{"default overcommit is 4", AdmissionConfig{}, capacity{VCPUs: 7}, need{2, 128}, 10000,
			"host is full: the sandbox needs 2 vCPUs, 1 of the host's 8 are free"},
		{"cpu overcommit", AdmissionConfig{CPUOvercommit: 1.5}, capacity{VCPUs: 2}, need{2, 128}, 10000,
			"host is full: the sandbox needs 2 vCPUs, 1 of the host's 3 are free"},
		{"memory after the reserve", AdmissionConfig{MemoryReserveMB: 1024}, capacity{MemoryMB: 3584}, need{1, 1024}, 10000,
			"host is full: the sandbox needs 1024 MiB of memory, 512 MiB of the host's 4096 MiB are free"},
		{"memory overcommit", AdmissionConfig{MemoryReserveMB: 1024, MemoryOvercommit: 2}, capacity{MemoryMB: 3584}, need{1, 1024}, 10000, ""},
		{"disk reserve", AdmissionConfig{DiskReserveMB: 4096}, capacity{}, need{1, 512}, 4500,
			"host is full: the sandbox may need 512 MiB of disk, 404 MiB are free above the host's 4096 MiB reserve"},
		{"disk below the reserve", AdmissionConfig{DiskReserveMB: 4096}, capacity{}, need{1, 512}, 100,
			"host is full: the sandbox may need 512 MiB of disk, 0 MiB are free above the host's 4096 MiB reserve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Host = fixedHost(&free)
			free = tc.free
			err := newAdmitter(tc.cfg, t.TempDir()).admit(tc.used, tc.n)
			wantHostFull(t, err, tc.want)
		})
	}
}

func wantHostFull(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if wrenn.ErrorCode(err) != wrenn.EHostFull || wrenn.ErrorMessage(err) != want {
		t.Fatalf("error = %v, want %s %q", err, wrenn.EHostFull, want)
	}
}

// TestManagerAdmission: the manager counts what holds a VM — running and
// starting sandboxes, pool members — and not paused sandboxes; a resume is
// admitted like a create; idle pool members give way to a create.
func TestManagerAdmission(t *testing.T) {
	free := int64(10000)
	m := New(Config{Layout: layout.New(t.TempDir()), Logger: discardLog(), Admission: AdmissionConfig{
		CPUOvercommit: 2, MemoryReserveMB: 1024, DiskReserveMB: 1000, Host: fixedHost(&free), // 4 vCPUs, 4096 MiB
	}})
	t.Cleanup(m.Close)
	spec := func(vcpus, memoryMB int) wrenn.SandboxSpec {
		return wrenn.SandboxSpec{ID: wrenn.NewID(wrenn.PrefixSandbox), VCPUs: vcpus, MemoryMB: memoryMB}
	}
	running := addRunning(t, m, &machine{})
	running.rec = record{ID: running.id, VCPUs: 2, MemoryMB: 1024}
	paused := addRunning(t, m, nil)
	paused.rec = record{ID: paused.id, VCPUs: 4, MemoryMB: 4096, Paused: true}
	paused.lc = lcPaused

	starting, err := m.reserveWithin(t.Context(), spec(2, 1024), nil)
	if err != nil {
		t.Fatalf("a create that fits beside a paused sandbox: %v", err)
	}
	_, err = m.reserveWithin(t.Context(), spec(1, 128), nil)
	wantHostFull(t, err, "host is full: the sandbox needs 1 vCPUs, 0 of the host's 4 are free")

	paused.op.Lock()
	_, err = m.beginResume(paused)
	paused.op.Unlock()
	wantHostFull(t, err, "host is full: the sandbox needs 4 vCPUs, 0 of the host's 4 are free")
	if paused.lifecycle() != lcPaused {
		t.Fatalf("a refused resume left the sandbox %s", paused.lifecycle())
	}

	starting.move(lcGone)
	m.forget(starting)
	// A ready pool member of 2 vCPUs fills the host again, and gives way.
	member := newSandbox("pool-test", m.cfg.Layout.Sandbox("pool-test"), discardLog(), lcPooled)
	member.mach, member.rec = &machine{}, record{ID: "pool-test", VCPUs: 2, MemoryMB: 512, Pool: true}
	if err := os.MkdirAll(member.dir.Path(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.addMember(member, need{2, 512}); err != nil {
		t.Fatal(err)
	}
	m.pool.mu.Lock()
	m.pool.ready[poolKey{name: "minimal"}] = []*poolMember{{sb: member, readyAt: time.Now()}}
	m.pool.mu.Unlock()
	if _, err := m.reserveWithin(t.Context(), spec(1, 128), nil); err != nil {
		t.Fatalf("a create that fits once the pool gives way: %v", err)
	}
	if member.lifecycle() != lcGone || m.members[member] {
		t.Fatalf("the pool member is %s, counted %v; want it ended", member.lifecycle(), m.members[member])
	}

	_, err = m.reserveWithin(t.Context(), spec(1, 4096), nil)
	wantHostFull(t, err, "host is full: the sandbox needs 4096 MiB of memory, 2944 MiB of the host's 4096 MiB are free")
	free = 1200
	m.admit.cfg.CPUOvercommit = 4
	_, err = m.reserveWithin(t.Context(), spec(1, 512), nil)
	wantHostFull(t, err, "host is full: the sandbox may need 512 MiB of disk, 200 MiB are free above the host's 1000 MiB reserve")
}
