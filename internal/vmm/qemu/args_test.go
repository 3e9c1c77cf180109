package qemu

import (
	"strings"
	"testing"

	"github.com/wrennhq/wrenn/internal/vmm"
)

// The bulk data port (issue 14) is a device only where a VM asks for it:
// a snapshot restores only into the devices it was taken with.
func TestArgsDataPort(t *testing.T) {
	d := &Driver{tcgCPU: DefaultTCGCPU}
	c := vmm.Config{ID: "sb-1", RunDir: "/run/x", RootDisk: "/run/x/root", RootDiskFormat: "qcow2",
		AgentSocket: "/run/x/envd.sock", MemoryMB: 512, VCPUs: 1}
	without := strings.Join(d.args(c, AccelTCG, fdArgs{tap: -1, qmp: 3, agent: 4, console: 5, incoming: -1, data: -1}), " ")
	if strings.Contains(without, "wrenn.data") {
		t.Errorf("a VM without DataSocket has the port: %s", without)
	}
	c.DataSocket = "/run/x/data.sock"
	with := strings.Join(d.args(c, AccelTCG, fdArgs{tap: -1, qmp: 3, agent: 4, console: 5, incoming: -1, data: 6}), " ")
	for _, want := range []string{"socket,id=data,fd=6,server=on,wait=off", "virtserialport,chardev=data,name=wrenn.data"} {
		if !strings.Contains(with, want) {
			t.Errorf("no %q in %s", want, with)
		}
	}
}
