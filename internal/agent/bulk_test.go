package agent

import (
	"testing"

	"github.com/wrennhq/wrenn/internal/layout"
)

// A VM gets the bulk data port exactly when its record says it has one:
// a snapshot restores only into the devices it was taken with.
func TestVMConfigDataPort(t *testing.T) {
	dir := layout.New("/var/lib/wrenn").Sandbox("sb-1")
	if c := vmConfig(record{ID: "sb-1"}, dir); c.DataSocket != "" {
		t.Errorf("without the port: DataSocket %q", c.DataSocket)
	}
	if c := vmConfig(record{ID: "sb-1", DataPort: true}, dir); c.DataSocket != dir.DataSocket() {
		t.Errorf("with the port: DataSocket %q, want %q", c.DataSocket, dir.DataSocket())
	}
}
