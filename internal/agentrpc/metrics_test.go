package agentrpc_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/mock"
)

// TestMetricsRoundTrip: points, windows and errors cross the RPC intact; a
// host that does not sample answers with a host agent error.
func TestMetricsRoundTrip(t *testing.T) {
	ctx := context.Background()
	want := []wrenn.MetricPoint{
		{Time: time.UnixMilli(1_700_000_000_500).UTC(), CPUPct: 12.5, MemBytes: 1 << 20, DiskBytes: 4096},
		{Time: time.UnixMilli(1_700_000_001_000).UTC(), CPUPct: 100, MemBytes: 2 << 20, DiskBytes: 8192},
	}
	h := snapHost{&mock.Agent{
		SandboxMetricsFn: func(_ context.Context, id string, window time.Duration) ([]wrenn.MetricPoint, error) {
			if id != "sb-1" {
				return nil, wrenn.Errorf(wrenn.ENotFound, "sandbox not found on this host")
			}
			if window != 2*time.Hour {
				return nil, wrenn.Errorf(wrenn.EInvalid, "window %s", window)
			}
			return want, nil
		},
	}}
	c := agentrpc.Dial(serve(t, h, "secret"), "secret")
	got, err := c.SandboxMetrics(ctx, "sb-1", 2*time.Hour)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("metrics = %+v, %v; want %+v", got, err, want)
	}
	if _, err := c.SandboxMetrics(ctx, "sb-2", time.Hour); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Fatalf("metrics of a sandbox the host lacks: %v", err)
	}
	bare := agentrpc.Dial(serve(t, &fakeHost{}, "secret"), "secret")
	if _, err := bare.SandboxMetrics(ctx, "sb-1", time.Hour); wrenn.ErrorCode(err) != wrenn.EHostAgent {
		t.Fatalf("metrics from a host that does not sample: %v", err)
	}
}
