package qemu_test

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/wrennhq/wrenn/internal/vmm"
	"github.com/wrennhq/wrenn/internal/vmm/qemu"
	"github.com/wrennhq/wrenn/internal/vmm/vmmtest"
)

func TestConformance(t *testing.T) {
	if os.Geteuid() != 0 && os.Getenv("WRENN_REQUIRE_VMS") != "1" {
		t.Skip("booting VMs here needs root")
	}
	f := vmmtest.Guest(t)
	vmmtest.Run(t, func(t *testing.T) vmm.Driver {
		d, err := qemu.New(qemu.Config{Accel: os.Getenv("WRENN_ACCEL"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}, f)
}
