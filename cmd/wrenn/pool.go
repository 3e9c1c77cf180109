package main

import "github.com/wrennhq/wrenn/internal/agent"

// Environment variables of the warm pool's budget (issue 14); its floor is
// WRENN_WARM_POOL (host.go).
const (
	envPoolMax         = "WRENN_POOL_MAX"           // members kept across templates (WRENN_WARM_POOL=0 for none)
	envPoolMaxMemoryMB = "WRENN_POOL_MAX_MEMORY_MB" // their guests' memory, MiB; unset: half what admission allows
	envPoolRefills     = "WRENN_POOL_REFILLS"       // members made at once while creates wait; unset: one per core
)

// poolFromEnv reads the warm pool's budget.
func poolFromEnv() (agent.PoolConfig, error) {
	var c agent.PoolConfig
	var err error
	if c.Max, err = envInt(envPoolMax, agent.DefaultPoolMax, 1, 1024); err != nil {
		return c, err
	}
	if c.MaxMemoryMB, err = envInt(envPoolMaxMemoryMB, 0, 0, 1<<30); err != nil {
		return c, err
	}
	c.Refills, err = envInt(envPoolRefills, 0, 0, 256)
	return c, err
}
