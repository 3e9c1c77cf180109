package envd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wrennhq/wrenn"
)

// Benchmarks drive a guest server in this process over a real Unix
// socketpair, so they measure this package, not a VM's channel.
//
//	go test -run '^$' -bench . -benchmem ./internal/envd

func BenchmarkPing(b *testing.B) {
	g := MustStart(b)
	ctx := context.Background()
	for b.Loop() {
		if err := g.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExecRoundTrip runs `true` through sh, as {"cmd":"true"} does.
func BenchmarkExecRoundTrip(b *testing.B) {
	g := MustStart(b)
	ctx := context.Background()
	for b.Loop() {
		res, err := g.Exec(ctx, wrenn.ExecRequest{Cmd: "true"})
		if err != nil || res.ExitCode != 0 {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkForkExec is BenchmarkExecRoundTrip's floor: a command started
// and waited for by os/exec with its output on pipes, as envd runs one,
// with no session: `true` through /bin/sh, and /bin/true with no shell.
// Run in a guest (BenchmarkEnvdInGuest in tests/e2e), they say what
// envd's exec path adds to the fork+exec it cannot avoid.
func BenchmarkForkExec(b *testing.B) {
	run := func(b *testing.B, args ...string) {
		for b.Loop() {
			cmd := exec.Command(args[0], args[1:]...)
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("sh", func(b *testing.B) { run(b, "/bin/sh", "-c", "true") })
	b.Run("program", func(b *testing.B) { run(b, "/bin/true") })
}

const benchFileSize = 64 << 20

// zeros reads as n zero bytes without holding them.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), z.n))
	clear(p[:k])
	z.n -= int64(k)
	return k, nil
}

func BenchmarkWriteFile(b *testing.B) {
	g := MustStart(b)
	path := filepath.Join(b.TempDir(), "file")
	b.SetBytes(benchFileSize)
	for b.Loop() {
		if err := g.WriteFile(context.Background(), path, &zeros{n: benchFileSize}); err != nil {
			b.Fatal(err)
		}
	}
	reportPeakRSS(b)
}

func BenchmarkReadFile(b *testing.B) {
	g := MustStart(b)
	path := filepath.Join(b.TempDir(), "file")
	if err := g.WriteFile(context.Background(), path, &zeros{n: benchFileSize}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchFileSize)
	for b.Loop() {
		rc, err := g.ReadFile(context.Background(), path)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil || n != benchFileSize {
			b.Fatal(n, err)
		}
	}
	reportPeakRSS(b)
}

// reportPeakRSS reports the process's peak resident set (host and guest
// side together): it stays flat however large the file.
func reportPeakRSS(b *testing.B) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			b.ReportMetric(float64(kb)/1024, "peak-RSS-MiB")
		}
	}
}
