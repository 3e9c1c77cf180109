package e2e

import (
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBulkFiles moves files over the bulk data port (issue 14) through
// the streaming and plain file routes: a few hundred MiB of random bytes
// both ways, checked by SHA-256 at the client and in the guest; an empty
// file; and an upload whose client goes away part way, which leaves
// neither the file nor a temporary one behind.
func TestBulkFiles(t *testing.T) {
	s := startVMServer(t, shortTempDir(t))
	key := s.account("bulk@example.com")
	sb := s.create(key, map[string]any{"template": "minimal", "vcpus": 1, "memory_mb": 1024, "timeout_sec": 900})
	t.Cleanup(func() { s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil) })
	// The VM has the port the transfers take.
	if _, err := os.Stat(filepath.Join(s.dataDir, "sandboxes", sb.ID, "data.sock")); err != nil {
		t.Fatalf("no bulk data port: %v", err)
	}

	t.Run("300 MiB", func(t *testing.T) {
		const size = 300 << 20
		sent := upload(t, s, key, sb.ID, "stream/write", "/root/big.bin", size)
		got, n := download(t, s, key, sb.ID, "stream/read", "/root/big.bin")
		if got != sent || n != size {
			t.Fatalf("sent %s, got %s (%d bytes)", sent, got, n)
		}
		if r := s.exec(key, sb.ID, "sha256sum /root/big.bin; rm /root/big.bin"); !strings.HasPrefix(r.Stdout, sent) {
			t.Errorf("in the guest: %+v", r)
		}
	})

	t.Run("empty", func(t *testing.T) {
		for _, route := range []string{"write", "stream/write"} {
			sent := upload(t, s, key, sb.ID, route, "/root/empty.bin", 0)
			for _, read := range []string{"read", "stream/read"} {
				if got, n := download(t, s, key, sb.ID, read, "/root/empty.bin"); got != sent || n != 0 {
					t.Errorf("%s then %s: %d bytes", route, read, n)
				}
			}
		}
	})

	t.Run("client gone part way", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		sentSome := make(chan struct{})
		go func() {
			_ = mw.WriteField("path", "/root/cut/half.bin")
			fw, err := mw.CreateFormFile("file", "data")
			if err == nil {
				_, err = io.Copy(fw, randomReader(7, 64<<20))
			}
			close(sentSome)
			// The client stops without ending the body, then goes away.
			<-ctx.Done()
			pw.CloseWithError(err)
		}()
		req, _ := http.NewRequestWithContext(ctx, "POST", s.url+"/v1/sandboxes/"+sb.ID+"/files/stream/write", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("X-API-Key", key["X-API-Key"])
		errc := make(chan error, 1)
		go func() {
			resp, err := s.client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		<-sentSome
		cancel()
		if err := <-errc; err == nil {
			t.Fatal("the cut upload succeeded")
		}
		// Nothing of it stays, once the server has seen the client go.
		var left string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			r := s.exec(key, sb.ID, "ls -A /root/cut")
			if left = strings.TrimSpace(r.Stdout); left == "" {
				break
			}
		}
		if left != "" {
			t.Fatalf("a cut upload left %q", left)
		}
		// The channel takes the next transfer.
		sent := upload(t, s, key, sb.ID, "stream/write", "/root/cut/whole.bin", 8<<20)
		if got, _ := download(t, s, key, sb.ID, "stream/read", "/root/cut/whole.bin"); got != sent {
			t.Fatalf("after a cut upload: sent %s, got %s", sent, got)
		}
	})
}
