package qemu

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wrennhq/wrenn/internal/vmm"
)

func TestArgsEscapeCommas(t *testing.T) {
	dir := "/run/wr,x"
	d := &Driver{tcgCPU: DefaultTCGCPU}
	args := d.args(vmm.Config{ID: "sb-a,b", RunDir: dir, RootDisk: dir + "/root,disk", RootDiskFormat: "qcow2",
		AgentSocket: dir + "/envd.sock", MemoryFile: dir + "/mem", MemoryShared: true, MemoryMB: 512, VCPUs: 1}, AccelTCG,
		fdArgs{tap: -1, qmp: 3, agent: 4, console: 5, incoming: -1, data: -1})
	joined := strings.Join(args, "\n")
	for _, want := range []string{
		"wrenn:/run/wr,,x",
		"id=root,file=/run/wr,,x/root,,disk,format=qcow2,",
		"socket,id=qmp,fd=3,server=on,wait=off",
		"socket,id=envd,fd=4,server=on,wait=off",
		"socket,id=console,fd=5,server=on,wait=off",
		"mem-path=/run/wr,,x/mem,share=on",
		"-sandbox\non,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("no %q in\n%s", want, joined)
		}
	}
}

// Strays finds only processes of the driver's binary whose -name argument
// is exactly the run directory's.
func TestStrays(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	bash, _ = filepath.EvalSymlinks(bash)
	d := &Driver{bin: bash}
	dir := t.TempDir()
	start := func(bin string, args ...string) int {
		t.Helper()
		// "; true" keeps bash from exec'ing sleep, so the process stays bash.
		cmd := exec.Command(bin, append([]string{"-c", "sleep 60; true", "x"}, args...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd.Process.Pid
	}
	ours := start(bash, "-name", nameArg(dir))
	start(bash, "-name", nameArg(dir+"x"))            // another run directory
	start(bash, "-name", nameArg("/elsewhere"+dir))   // a path that ends in this one
	start(bash, "-serial", "file:"+dir+"/qmp.sock,x") // mentions the path
	if sh, err := exec.LookPath("sh"); err == nil {
		if real, _ := filepath.EvalSymlinks(sh); real != bash {
			start(real, "-name", nameArg(dir)) // another binary
		}
	}
	// The processes start asynchronously; their cmdline is set by exec.
	var got []int
	for range 100 {
		if got = d.Strays(dir); slices.Contains(got, ours) {
			break
		}
	}
	if !slices.Equal(got, []int{ours}) {
		t.Errorf("Strays = %v, want [%d]", got, ours)
	}
}
