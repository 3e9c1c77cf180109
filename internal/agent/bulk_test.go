package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"

	"github.com/wrennhq/wrenn/internal/envd"
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

// writeBulk leaves small uploads, and any it cannot send, to the session
// with every byte it read put back, and a source's failure in place.
func TestWriteBulkFallsBack(t *testing.T) {
	noPort := envd.NewBulk(func(context.Context) (net.Conn, error) { return nil, errors.New("no port") }, nil)
	for _, size := range []int{0, 10, bulkMinUpload - 1, bulkMinUpload, 3 * bulkMinUpload} {
		data := bytes.Repeat([]byte{7}, size)
		r, done, err := writeBulk(context.Background(), noPort, "/f", bytes.NewReader(data))
		if done || err != nil {
			t.Fatalf("%d bytes: done %v, %v", size, done, err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: the session would get %d bytes, %v", size, len(got), err)
		}
	}
	failing := io.MultiReader(bytes.NewReader(make([]byte, 100)), iotest.ErrReader(io.ErrUnexpectedEOF))
	r, done, _ := writeBulk(context.Background(), noPort, "/f", failing)
	if got, err := io.ReadAll(r); done || len(got) != 100 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a failing source: %d bytes, %v", len(got), err)
	}
}
