package agentrpc_test

import (
	"context"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
)

// discardHost takes uploads into nothing and serves downloads of zeros:
// what is left is the RPC transport's own cost.
type discardHost struct{ fakeHost }

func (h *discardHost) WriteFile(_ context.Context, _, _ string, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func (h *discardHost) ReadFile(context.Context, string, string) (io.ReadCloser, error) {
	return io.NopCloser(io.LimitReader(zeros{}, 256<<20)), nil
}

// BenchmarkFileTransfer moves 256 MiB each way between the control
// plane's client and an agent's handler over a Unix socket, with no VM:
// the ceiling the RPC hop puts on file transfers (issue 14).
func BenchmarkFileTransfer(b *testing.B) {
	h := &discardHost{}
	addr := serveB(b, h)
	c := agentrpc.Dial(addr, "tok")
	b.Run("upload", func(b *testing.B) {
		b.SetBytes(256 << 20)
		for b.Loop() {
			if err := c.WriteFile(context.Background(), "sb", "/f", io.LimitReader(zeros{}, 256<<20)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("download", func(b *testing.B) {
		b.SetBytes(256 << 20)
		for b.Loop() {
			rc, err := c.ReadFile(context.Background(), "sb", "/f")
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, rc); err != nil || n != 256<<20 {
				b.Fatalf("downloaded %d bytes: %v", n, err)
			}
			rc.Close()
		}
	})
}

// serveB is serveHandler for a benchmark.
func serveB(b *testing.B, h agentrpc.Host) string {
	sock := filepath.Join(b.TempDir(), "a.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: agentrpc.NewHandler(h, "tok"), Protocols: &p}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return "unix:" + sock
}
