package control

import (
	"context"
	"slices"
	"strings"

	"github.com/wrennhq/wrenn"
)

// The metrics of one sandbox (issue 11): its host agent samples it and
// keeps the samples (wrenn.Metrics); the control plane checks the range
// and that the sandbox is the caller's and has metrics to show.

// metricsRangeNames lists wrenn.MetricsRanges in order, for messages.
var metricsRangeNames = []string{"5m", "10m", "1h", "2h", "6h", "12h", "24h"}

// SandboxMetrics returns the points of the team's sandbox id over the
// range rng (a key of wrenn.MetricsRanges; "" is the default), oldest
// first. A running or paused sandbox has metrics; any other (pending,
// stopped, error) is ENotFound, as one that does not exist. Reading
// metrics is not activity: a dashboard polling them does not keep a
// sandbox from its inactivity timeout.
func (s *Service) SandboxMetrics(ctx context.Context, teamID, id, rng string) ([]wrenn.MetricPoint, error) {
	if rng == "" {
		rng = wrenn.DefaultMetricsRange
	}
	window, ok := wrenn.MetricsRanges[rng]
	if !ok {
		return nil, wrenn.Errorf(wrenn.EInvalid, "range must be one of %s", strings.Join(metricsRangeNames, ", "))
	}
	sb, err := s.sandboxes.GetSandbox(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	if sb.Status == wrenn.StatusMissing {
		return nil, errMissing(sb)
	}
	if !slices.Contains([]wrenn.SandboxStatus{wrenn.StatusRunning, wrenn.StatusPaused}, sb.Status) {
		return nil, wrenn.Errorf(wrenn.ENotFound, "sandbox is %s: it has no metrics", sb.Status)
	}
	agent, err := s.agentFor(ctx, sb.HostID)
	if err != nil {
		return nil, err
	}
	mx, ok := agent.(wrenn.Metrics)
	if !ok {
		return nil, wrenn.Errorf(wrenn.EHostAgent, "the host agent does not sample its sandboxes")
	}
	pts, err := mx.SandboxMetrics(ctx, id, window)
	if err != nil {
		return nil, s.agentError(ctx, "read the sandbox's metrics", id, err)
	}
	return pts, nil
}
