package wrenn

import "fmt"

// Quota is what one team may hold at once. A limit of 0 is no limit.
//
// What counts: a sandbox that is pending or running holds its vCPUs and
// memory on a host, so it counts against Sandboxes, VCPUs and MemoryMB. A
// paused sandbox holds no CPU or RAM, only its snapshot on disk: it counts
// against SnapshotMB, at its memory size, beside the recorded sizes of the
// team's snapshot templates. Stopped sandboxes and those in error hold
// nothing.
type Quota struct {
	Sandboxes  int   // running sandboxes
	VCPUs      int   // vCPUs of the running sandboxes together
	MemoryMB   int   // memory of the running sandboxes together, MiB
	SnapshotMB int64 // snapshot templates and paused sandboxes, MiB
}

// QuotaOverride is a team's own quota, set by the operator. A nil field
// takes the operator's default.
type QuotaOverride struct {
	Sandboxes  *int
	VCPUs      *int
	MemoryMB   *int
	SnapshotMB *int64
}

// Apply returns def with o's fields in place of its own.
func (o QuotaOverride) Apply(def Quota) Quota {
	if o.Sandboxes != nil {
		def.Sandboxes = *o.Sandboxes
	}
	if o.VCPUs != nil {
		def.VCPUs = *o.VCPUs
	}
	if o.MemoryMB != nil {
		def.MemoryMB = *o.MemoryMB
	}
	if o.SnapshotMB != nil {
		def.SnapshotMB = *o.SnapshotMB
	}
	return def
}

// Usage is what a team holds now, counted as Quota says.
type Usage struct {
	Sandboxes     int
	VCPUs         int
	MemoryMB      int
	SnapshotBytes int64
}

// MiB is a mebibyte in bytes.
const MiB = 1 << 20

// AdmitSandbox checks that one more running sandbox of vcpus and memoryMB
// fits q beside u, returning an EQuotaExceeded error that names the limit
// it would pass.
func (q Quota) AdmitSandbox(u Usage, vcpus, memoryMB int) error {
	switch {
	case q.Sandboxes > 0 && u.Sandboxes+1 > q.Sandboxes:
		return quotaError("%d running sandboxes (%d running now)", q.Sandboxes, u.Sandboxes)
	case q.VCPUs > 0 && u.VCPUs+vcpus > q.VCPUs:
		return quotaError("%d vCPUs (%d in use, %d more asked)", q.VCPUs, u.VCPUs, vcpus)
	case q.MemoryMB > 0 && u.MemoryMB+memoryMB > q.MemoryMB:
		return quotaError("%d MiB of memory (%d MiB in use, %d MiB more asked)", q.MemoryMB, u.MemoryMB, memoryMB)
	}
	return nil
}

// AdmitSnapshot checks that about moreBytes of snapshot storage fit q
// beside u, returning an EQuotaExceeded error that names the limit.
func (q Quota) AdmitSnapshot(u Usage, moreBytes int64) error {
	if q.SnapshotMB > 0 && u.SnapshotBytes+moreBytes > q.SnapshotMB*MiB {
		return quotaError("%d MiB of snapshot storage (%d MiB in use, about %d MiB more asked)",
			q.SnapshotMB, ceilMiB(u.SnapshotBytes), ceilMiB(moreBytes))
	}
	return nil
}

func ceilMiB(b int64) int64 { return (b + MiB - 1) / MiB }

func quotaError(format string, args ...any) *Error {
	return &Error{Code: EQuotaExceeded, Message: "team quota: " + fmt.Sprintf(format, args...)}
}
