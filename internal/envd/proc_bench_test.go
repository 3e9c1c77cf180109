package envd

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
)

// BenchmarkSpawnFirstByte: a background process started, attached to, and
// its first output byte received, as a client that starts a server and
// watches it does; the kill is not timed.
func BenchmarkSpawnFirstByte(b *testing.B) {
	g := MustStart(b)
	ctx := context.Background()
	var samples []time.Duration
	for b.Loop() {
		start := time.Now()
		p, err := g.Spawn(ctx, wrenn.ProcessRequest{Cmd: "echo first; exec sleep 600"})
		if err != nil {
			b.Fatal(err)
		}
		st, err := g.Attach(ctx, wrenn.ProcessSelector{PID: p.PID})
		if err != nil {
			b.Fatal(err)
		}
		for {
			ev, err := st.Recv()
			if err != nil {
				b.Fatal(err)
			}
			if ev.Type == wrenn.ExecStdout {
				break
			}
		}
		samples = append(samples, time.Since(start))
		b.StopTimer()
		st.Close()
		if err := g.Kill(ctx, wrenn.ProcessSelector{PID: p.PID}, wrenn.SIGKILL); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportP50(b, "first-byte", samples)
}

func reportP50(b *testing.B, name string, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, name+"-p50-ms")
}
