package main

import (
	"fmt"
	"os"
	"time"

	"github.com/wrennhq/wrenn/internal/agent"
)

// envHealthInterval is how often the host agent checks that each running
// guest answers. Each check wakes every guest: under TCG about half of
// what an idle sandbox costs (docs/BENCHMARKS.md, "Idle guests (issue
// 14)"). A longer interval makes a hung guest take longer to be noticed
// and ended: up to the interval, then 30 s of grace.
const envHealthInterval = "WRENN_HEALTH_INTERVAL"

// healthFromEnv reads the host agent's health checks' settings; unset is
// agent's defaults.
func healthFromEnv() (agent.HealthConfig, error) {
	var c agent.HealthConfig
	v := os.Getenv(envHealthInterval)
	if v == "" {
		return c, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second || d > 24*time.Hour {
		return c, fmt.Errorf("%s=%q: want a duration from 1s to 24h, such as 30s", envHealthInterval, v)
	}
	c.Interval = d
	return c, nil
}
