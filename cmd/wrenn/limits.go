package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/wrennhq/wrenn/internal/agent"
	"github.com/wrennhq/wrenn/internal/control"
)

// Environment variables of the operator's limits on sandboxes and teams.
const (
	envMaxVCPUs    = "WRENN_MAX_SANDBOX_VCPUS"     // vCPUs one sandbox may have
	envMaxMemoryMB = "WRENN_MAX_SANDBOX_MEMORY_MB" // memory one sandbox may have, MiB
	// Every team's quota unless `wrenn admin quota set` gave it its own;
	// 0 is no limit.
	envQuotaSandboxes  = "WRENN_QUOTA_SANDBOXES"   // running sandboxes
	envQuotaVCPUs      = "WRENN_QUOTA_VCPUS"       // vCPUs of running sandboxes
	envQuotaMemoryMB   = "WRENN_QUOTA_MEMORY_MB"   // memory of running sandboxes, MiB
	envQuotaSnapshotMB = "WRENN_QUOTA_SNAPSHOT_MB" // snapshot templates and paused sandboxes, MiB
	// How much of its host a host agent lets sandboxes take.
	envCPUOvercommit    = "WRENN_CPU_OVERCOMMIT"    // vCPUs per host core
	envMemoryOvercommit = "WRENN_MEMORY_OVERCOMMIT" // multiplies the RAM left after the reserve
	envMemoryReserveMB  = "WRENN_MEMORY_RESERVE_MB" // host RAM kept from sandboxes, MiB
	envDiskReserveMB    = "WRENN_DISK_RESERVE_MB"   // free disk no sandbox may take, MiB
	envDiskOvercommit   = "WRENN_DISK_OVERCOMMIT"   // multiplies the free disk above the reserve
)

// Default team quotas: room for real work on a host or two, and a bound
// on what one team takes.
const (
	defaultQuotaSandboxes  = 20
	defaultQuotaVCPUs      = 32
	defaultQuotaMemoryMB   = 32 << 10
	defaultQuotaSnapshotMB = 50 << 10
)

// limitsFromEnv reads the operator's limits.
func limitsFromEnv() (control.Limits, error) {
	var l control.Limits
	var err error
	read := func(dst *int, key string, def, lo, hi int) {
		if err != nil {
			return
		}
		*dst, err = envInt(key, def, lo, hi)
	}
	read(&l.MaxVCPUs, envMaxVCPUs, control.DefaultMaxVCPUs, control.MinVCPUs, 256)
	read(&l.MaxMemoryMB, envMaxMemoryMB, control.DefaultMaxMemoryMB, control.MinMemoryMB, 1<<22)
	read(&l.Quota.Sandboxes, envQuotaSandboxes, defaultQuotaSandboxes, 0, 1<<20)
	read(&l.Quota.VCPUs, envQuotaVCPUs, defaultQuotaVCPUs, 0, 1<<24)
	read(&l.Quota.MemoryMB, envQuotaMemoryMB, defaultQuotaMemoryMB, 0, 1<<30)
	var snap int
	read(&snap, envQuotaSnapshotMB, defaultQuotaSnapshotMB, 0, 1<<40)
	l.Quota.SnapshotMB = int64(snap)
	return l, err
}

// admissionFromEnv reads how much of its host a host agent admits.
func admissionFromEnv() (agent.AdmissionConfig, error) {
	var c agent.AdmissionConfig
	var err error
	if c.CPUOvercommit, err = envRatio(envCPUOvercommit, agent.DefaultCPUOvercommit); err != nil {
		return c, err
	}
	if c.MemoryOvercommit, err = envRatio(envMemoryOvercommit, 1); err != nil {
		return c, err
	}
	if c.MemoryReserveMB, err = envInt(envMemoryReserveMB, agent.DefaultMemoryReserveMB, 0, 1<<30); err != nil {
		return c, err
	}
	if c.DiskReserveMB, err = envInt(envDiskReserveMB, agent.DefaultDiskReserveMB, 0, 1<<30); err != nil {
		return c, err
	}
	c.DiskOvercommit, err = envRatio(envDiskOvercommit, 1)
	return c, err
}

// envRatio reads a positive ratio such as 4 or 1.5 from key; unset is def.
func envRatio(key string, def float64) (float64, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0 && f <= 1000) {
		return 0, fmt.Errorf("%s=%q: want a ratio above 0, such as 4 or 1.5", key, v)
	}
	return f, nil
}

// envInt reads a whole number from lo to hi from key; unset is def.
func envInt(key string, def, lo, hi int) (int, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q: want a whole number from %d to %d", key, v, lo, hi)
	}
	return n, nil
}
