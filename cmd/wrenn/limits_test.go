package main

import (
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agent"
	"github.com/wrennhq/wrenn/internal/control"
)

func TestLimitsFromEnv(t *testing.T) {
	l, err := limitsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := control.Limits{MaxVCPUs: 8, MaxMemoryMB: 8192, Quota: wrenn.Quota{Sandboxes: 20, VCPUs: 32, MemoryMB: 32768, SnapshotMB: 51200}}
	if l != want {
		t.Errorf("defaults = %+v, want %+v", l, want)
	}
	t.Setenv(envMaxVCPUs, "4")
	t.Setenv(envQuotaSandboxes, "0")
	t.Setenv(envQuotaSnapshotMB, "100")
	l, err = limitsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if l.MaxVCPUs != 4 || l.Quota.Sandboxes != 0 || l.Quota.SnapshotMB != 100 {
		t.Errorf("configured = %+v", l)
	}
	for key, v := range map[string]string{envMaxVCPUs: "0", envMaxMemoryMB: "64", envQuotaVCPUs: "-1", envQuotaMemoryMB: "lots"} {
		t.Run(key, func(t *testing.T) {
			t.Setenv(key, v)
			if _, err := limitsFromEnv(); err == nil {
				t.Errorf("%s=%s accepted", key, v)
			}
		})
	}
}

func TestAdmissionFromEnv(t *testing.T) {
	c, err := admissionFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := agent.AdmissionConfig{CPUOvercommit: 4, MemoryOvercommit: 1, MemoryReserveMB: 1024, DiskReserveMB: 4096, DiskOvercommit: 1}
	if c != want {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
	t.Setenv(envCPUOvercommit, "1.5")
	t.Setenv(envDiskReserveMB, "0")
	t.Setenv(envDiskOvercommit, "2")
	if c, err = admissionFromEnv(); err != nil || c.CPUOvercommit != 1.5 || c.DiskReserveMB != 0 || c.DiskOvercommit != 2 {
		t.Errorf("configured = %+v, %v", c, err)
	}
	for _, v := range []string{"0", "-1", "NaN", "x"} {
		t.Setenv(envMemoryOvercommit, v)
		if _, err := admissionFromEnv(); err == nil {
			t.Errorf("%s=%s accepted", envMemoryOvercommit, v)
		}
	}
}
