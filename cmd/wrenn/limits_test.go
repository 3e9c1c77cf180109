package main

import (
	"testing"

	"github.com/wrennhq/wrenn"
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
