package wrenn

import "time"

// A team's running sandboxes over time (issue 11): the control plane
// records what they reserve once a step, and adds each step's share to
// the team's daily usage.

// TeamSample is what a team's running sandboxes (pending ones included)
// reserved at one moment, or the most in a span of samples.
type TeamSample struct {
	At       time.Time
	Running  int // sandboxes
	VCPUs    int
	MemoryMB int
}

// DailyUsage is what a team's running sandboxes reserved over one UTC day.
type DailyUsage struct {
	Day          string  // YYYY-MM-DD
	CPUMinutes   float64 // vCPU-minutes
	RAMMBMinutes float64 // MiB-minutes
}
