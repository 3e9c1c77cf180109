package agentrpc

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc/agentv1"
)

// The metrics RPC, both ends. A Host that implements wrenn.Metrics serves
// it; any other answers Unimplemented.

var _ wrenn.Metrics = (*Client)(nil)

var errNoMetrics = connect.NewError(connect.CodeUnimplemented, errors.New("this host agent does not sample its sandboxes"))

func (s *server) SandboxMetrics(ctx context.Context, req *connect.Request[agentv1.SandboxMetricsRequest]) (*connect.Response[agentv1.SandboxMetricsResponse], error) {
	mx, ok := s.host.(wrenn.Metrics)
	if !ok {
		return nil, errNoMetrics
	}
	pts, err := mx.SandboxMetrics(ctx, req.Msg.SandboxId, time.Duration(req.Msg.WindowMs)*time.Millisecond)
	if err != nil {
		return nil, toConnect(err)
	}
	out := make([]*agentv1.MetricPoint, len(pts))
	for i, p := range pts {
		out[i] = &agentv1.MetricPoint{UnixMs: p.Time.UnixMilli(), CpuPct: p.CPUPct, MemBytes: p.MemBytes, DiskBytes: p.DiskBytes}
	}
	return connect.NewResponse(&agentv1.SandboxMetricsResponse{Points: out}), nil
}

// SandboxMetrics implements wrenn.Metrics.
func (c *Client) SandboxMetrics(ctx context.Context, id string, window time.Duration) ([]wrenn.MetricPoint, error) {
	resp, err := c.rpc.SandboxMetrics(ctx, connect.NewRequest(&agentv1.SandboxMetricsRequest{SandboxId: id, WindowMs: window.Milliseconds()}))
	if connect.CodeOf(err) == connect.CodeUnimplemented {
		return nil, wrenn.Errorf(wrenn.EHostAgent, "the host agent does not sample its sandboxes")
	}
	if err != nil {
		return nil, fromConnect(err)
	}
	out := make([]wrenn.MetricPoint, len(resp.Msg.Points))
	for i, p := range resp.Msg.Points {
		out[i] = wrenn.MetricPoint{Time: time.UnixMilli(p.UnixMs).UTC(), CPUPct: p.CpuPct, MemBytes: p.MemBytes, DiskBytes: p.DiskBytes}
	}
	return out, nil
}
