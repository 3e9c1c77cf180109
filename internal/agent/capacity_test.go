package agent

import (
	"testing"

	"github.com/wrennhq/wrenn"
)

// TestCapacity: what an agent reports it admits is what its admission
// admits, with its overcommit and reserve.
func TestCapacity(t *testing.T) {
	free := int64(10000)
	for _, tc := range []struct {
		cfg  AdmissionConfig
		want wrenn.HostCapacity
	}{
		{AdmissionConfig{}, wrenn.HostCapacity{VCPUs: 8, MemoryMB: 5120}},
		{AdmissionConfig{CPUOvercommit: 12, MemoryReserveMB: 1024}, wrenn.HostCapacity{VCPUs: 24, MemoryMB: 4096}},
		{AdmissionConfig{CPUOvercommit: 1.5, MemoryReserveMB: 1024, MemoryOvercommit: 2}, wrenn.HostCapacity{VCPUs: 3, MemoryMB: 8192}},
		{AdmissionConfig{MemoryReserveMB: 8192}, wrenn.HostCapacity{VCPUs: 8, MemoryMB: 0}},
	} {
		tc.cfg.Host = fixedHost(&free)
		got, err := tc.cfg.Capacity()
		if err != nil || got != tc.want {
			t.Errorf("%+v: capacity %+v, %v; want %+v", tc.cfg, got, err, tc.want)
		}
		// Admission agrees: the whole capacity fits, a vCPU more does not.
		a := newAdmitter(tc.cfg, t.TempDir())
		if tc.want.MemoryMB > 0 {
			if err := a.admit(capacity{}, need{VCPUs: tc.want.VCPUs, MemoryMB: tc.want.MemoryMB}); err != nil {
				t.Errorf("%+v: the whole capacity is refused: %v", tc.cfg, err)
			}
		}
		if err := a.admit(capacity{}, need{VCPUs: tc.want.VCPUs + 1, MemoryMB: 1}); wrenn.ErrorCode(err) != wrenn.EHostFull {
			t.Errorf("%+v: a vCPU more than the capacity: %v", tc.cfg, err)
		}
	}
}
