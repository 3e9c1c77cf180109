package qemu_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wrennhq/wrenn/internal/cgroup"
	"github.com/wrennhq/wrenn/internal/jail"
	"github.com/wrennhq/wrenn/internal/vmm"
	"github.com/wrennhq/wrenn/internal/vmm/qemu"
	"github.com/wrennhq/wrenn/internal/vmm/vmmtest"
)

func TestMain(m *testing.M) {
	jail.Main() // the driver jails QEMU through this binary
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	if os.Geteuid() != 0 && os.Getenv("WRENN_REQUIRE_VMS") != "1" {
		t.Skip("booting VMs here needs root")
	}
	f := vmmtest.Guest(t)
	cg, err := cgroup.Detect(cgroup.DefaultRoot, qemu.DefaultCgroupParent)
	if err != nil {
		t.Logf("VMs run without control groups: %v", err)
	}
	vmmtest.Run(t, func(t *testing.T) vmm.Driver {
		d, err := qemu.New(qemu.Config{Accel: os.Getenv("WRENN_ACCEL"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Cgroups: cg})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}, f)
}

// BenchmarkStart: from exec to QMP answering, the floor under every
// create and resume (the guest is not waited for); Stop is not timed.
func BenchmarkStart(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	f := vmmtest.Guest(b)
	d, err := qemu.New(qemu.Config{Accel: os.Getenv("WRENN_ACCEL"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	disk := filepath.Join(dir, "root.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", f.RootFS, disk).CombinedOutput(); err != nil {
		b.Fatalf("overlay: %v %s", err, out)
	}
	c := vmm.Config{ID: "bench", RunDir: dir, Kernel: f.Kernel, KernelArgs: "console=ttyS0", RootDisk: disk,
		RootDiskFormat: "qcow2", VCPUs: 1, MemoryMB: 512, AgentSocket: filepath.Join(dir, "envd.sock"),
		ConsoleLog: filepath.Join(dir, "console.log")}
	d.Accel(context.Background(), f.Kernel) // probe before timing
	for b.Loop() {
		vm, err := d.Start(context.Background(), c)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		vm.Stop(context.Background())
		b.StartTimer()
	}
}

// TestNewRefusesUnknownAccel: only "kvm", "tcg" and empty (probe) are
// accelerators; anything else would run TCG without its settings.
func TestNewRefusesUnknownAccel(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, accel := range []string{"", qemu.AccelKVM, qemu.AccelTCG} {
		if _, err := qemu.New(qemu.Config{Accel: accel, Logger: log}); err != nil {
			t.Errorf("accel %q: %v", accel, err)
		}
	}
	for _, accel := range []string{"KVM", "TCG", "kvm ", "hvf", "tcg,thread=multi"} {
		if _, err := qemu.New(qemu.Config{Accel: accel, Logger: log}); err == nil {
			t.Errorf("accel %q was accepted", accel)
		}
	}
}
