package wrenn_test

import (
	"testing"

	"github.com/wrennhq/wrenn"
)

func TestQuotaAdmitSandbox(t *testing.T) {
	q := wrenn.Quota{Sandboxes: 5, VCPUs: 8, MemoryMB: 4096}
	for _, tc := range []struct {
		name          string
		q             wrenn.Quota
		u             wrenn.Usage
		vcpus, memory int
		want          string // "" admits
	}{
		{"empty team", q, wrenn.Usage{}, 1, 512, ""},
		{"last slot", q, wrenn.Usage{Sandboxes: 4, VCPUs: 4, MemoryMB: 2048}, 4, 2048, ""},
		{"sandboxes full", q, wrenn.Usage{Sandboxes: 5, VCPUs: 5, MemoryMB: 2560}, 1, 512, "team quota: 5 running sandboxes (5 running now)"},
		{"vcpus", q, wrenn.Usage{Sandboxes: 1, VCPUs: 6}, 4, 512, "team quota: 8 vCPUs (6 in use, 4 more asked)"},
		{"memory", q, wrenn.Usage{Sandboxes: 1, VCPUs: 1, MemoryMB: 4000}, 1, 512, "team quota: 4096 MiB of memory (4000 MiB in use, 512 MiB more asked)"},
		{"no limits", wrenn.Quota{}, wrenn.Usage{Sandboxes: 1000, VCPUs: 1000, MemoryMB: 1 << 30}, 8, 8192, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.q.AdmitSandbox(tc.u, tc.vcpus, tc.memory)
			checkQuotaError(t, err, tc.want)
		})
	}
}

func TestQuotaAdmitSnapshot(t *testing.T) {
	q := wrenn.Quota{SnapshotMB: 1024}
	checkQuotaError(t, q.AdmitSnapshot(wrenn.Usage{SnapshotBytes: 512 * wrenn.MiB}, 512*wrenn.MiB), "")
	checkQuotaError(t, q.AdmitSnapshot(wrenn.Usage{SnapshotBytes: 512*wrenn.MiB + 1}, 512*wrenn.MiB),
		"team quota: 1024 MiB of snapshot storage (513 MiB in use, about 512 MiB more asked)")
	checkQuotaError(t, wrenn.Quota{}.AdmitSnapshot(wrenn.Usage{SnapshotBytes: 1 << 50}, 1<<40), "")
}

func TestQuotaOverride(t *testing.T) {
	def := wrenn.Quota{Sandboxes: 5, VCPUs: 8, MemoryMB: 4096, SnapshotMB: 1024}
	two, zero := 2, int64(0)
	got := wrenn.QuotaOverride{Sandboxes: &two, SnapshotMB: &zero}.Apply(def)
	want := wrenn.Quota{Sandboxes: 2, VCPUs: 8, MemoryMB: 4096, SnapshotMB: 0}
	if got != want {
		t.Fatalf("Apply = %+v, want %+v", got, want)
	}
}

func checkQuotaError(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if wrenn.ErrorCode(err) != wrenn.EQuotaExceeded || wrenn.ErrorMessage(err) != want {
		t.Fatalf("error = %v, want %s %q", err, wrenn.EQuotaExceeded, want)
	}
}
