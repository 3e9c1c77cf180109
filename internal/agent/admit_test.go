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
		{"fits", AdmissionConfig{}, capacity{VCPUs: 6, MemoryMB: 2048}, need{2, 1024, 1024}, 10000, ""},
		{"default overcommit is 4", AdmissionConfig{}, capacity{VCPUs: 7}, need{2, 128, 128}, 10000,
			"host is full: the sandbox needs 2 vCPUs, 1 of the host's 8 are free"},
		{"cpu overcommit", AdmissionConfig{CPUOvercommit: 1.5}, capacity{VCPUs: 2}, need{2, 128, 128}, 10000,
			"host is full: the sandbox needs 2 vCPUs, 1 of the host's 3 are free"},
		{"memory after the reserve", AdmissionConfig{MemoryReserveMB: 1024}, capacity{MemoryMB: 3584}, need{1, 1024, 1024}, 10000,
			"host is full: the sandbox needs 1024 MiB of memory, 512 MiB of the host's 4096 MiB are free"},
		{"memory overcommit", AdmissionConfig{MemoryReserveMB: 1024, MemoryOvercommit: 2}, capacity{MemoryMB: 3584}, need{1, 1024, 1024}, 10000, ""},
		{"disk reserve", AdmissionConfig{DiskReserveMB: 4096}, capacity{}, need{1, 512, 2600}, 6500,
			"host is full: the sandbox may need 2600 MiB of disk, 2404 MiB are free above the host's 4096 MiB reserve and what its sandboxes may still write"},
		{"disk below the reserve", AdmissionConfig{DiskReserveMB: 4096}, capacity{}, need{1, 512, 2600}, 100,
			"host is full: the sandbox may need 2600 MiB of disk, 0 MiB are free above the host's 4096 MiB reserve and what its sandboxes may still write"},
		{"disk others may still write", AdmissionConfig{DiskReserveMB: 4096}, capacity{DiskMB: 2000}, need{1, 512, 2600}, 8000,
			"host is full: the sandbox may need 2600 MiB of disk, 1904 MiB are free above the host's 4096 MiB reserve and what its sandboxes may still write"},
		{"disk overcommit", AdmissionConfig{DiskReserveMB: 4096, DiskOvercommit: 2}, capacity{DiskMB: 2000}, need{1, 512, 2600}, 8000, ""},
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
	create := func(vcpus, memoryMB int) (*sandbox, error) {
		return m.reserveWithin(t.Context(), wrenn.NewID(wrenn.PrefixSandbox), need{vcpus, memoryMB, 100}, nil)
	}
	running := addRunning(t, m, &machine{})
	running.rec = record{ID: running.id, VCPUs: 2, MemoryMB: 1024}
	paused := addRunning(t, m, nil)
	paused.rec = record{ID: paused.id, VCPUs: 4, MemoryMB: 4096, Paused: true}
	paused.lc = lcPaused

	starting, err := create(2, 1024)
	if err != nil {
		t.Fatalf("a create that fits beside a paused sandbox: %v", err)
	}
	_, err = create(1, 128)
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
	if err := m.addMember(member, need{2, 512, 100}); err != nil {
		t.Fatal(err)
	}
	m.pool.mu.Lock()
	m.pool.ready[poolKey{name: "minimal"}] = []*poolMember{{sb: member, readyAt: time.Now()}}
	m.pool.mu.Unlock()
	if _, err := create(1, 128); err != nil {
		t.Fatalf("a create that fits once the pool gives way: %v", err)
	}
	if member.lifecycle() != lcGone || m.members[member] {
		t.Fatalf("the pool member is %s, counted %v; want it ended", member.lifecycle(), m.members[member])
	}

	_, err = create(1, 4096)
	wantHostFull(t, err, "host is full: the sandbox needs 4096 MiB of memory, 2944 MiB of the host's 4096 MiB are free")
	free = 2200 // 1200 above the reserve; the running sandbox may write 1033 MiB, the one made above 100
	m.admit.cfg.CPUOvercommit = 4
	_, err = create(1, 512)
	wantHostFull(t, err, "host is full: the sandbox may need 100 MiB of disk, 67 MiB are free above the host's 1000 MiB reserve and what its sandboxes may still write")
}
