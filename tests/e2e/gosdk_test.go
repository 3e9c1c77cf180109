package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/client"
)

// TestGoSDK drives a real sandbox through the Go SDK (package client), as
// the CLI and the console do: create, exec, a streamed command, a
// background process and its stream, a terminal, a watch, a 16 MiB upload
// and download, a listing, pause, resume and destroy. Every exchange goes
// through the contract-checking transport.
func TestGoSDK(t *testing.T) {
	s := startVMServer(t, shortTempDir(t))
	key := s.account("gosdk@example.com")
	c, err := client.New(s.url, client.WithAPIKey(key["X-API-Key"]), client.WithHTTPClient(s.client))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	sb, err := c.CreateSandbox(ctx, client.CreateSandboxRequest{Template: "minimal", Metadata: map[string]string{"by": "gosdk"},
		Envs: map[string]string{"GREETING": "hello"}})
	if err != nil {
		t.Fatal(err)
	}
	destroyed := false
	defer func() {
		if !destroyed {
			_ = c.DestroySandbox(context.Background(), sb.ID)
		}
	}()
	if sb.Status != client.StatusRunning {
		t.Fatalf("created %+v", sb)
	}

	t.Run("exec", func(t *testing.T) {
		req := client.Command("sh", "-c", `echo "$GREETING $WHO"; pwd; printf '\377' >&2; exit 4`)
		req.Envs, req.Cwd, req.Timeout = map[string]string{"WHO": "sdk"}, "/tmp", 20*time.Second
		res, err := c.Exec(ctx, sb.ID, req)
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Stdout) != "hello sdk\n/tmp\n" || !bytes.Equal(res.Stderr, []byte{0xff}) || res.ExitCode != 4 {
			t.Errorf("Exec = stdout %q stderr %q exit %d", res.Stdout, res.Stderr, res.ExitCode)
		}
	})

	t.Run("exec stream", func(t *testing.T) {
		st, err := c.ExecStream(ctx, sb.ID, client.Command("sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done; echo oops >&2; exit 3"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var stdout, stderr bytes.Buffer
		exit, lines := -1, 0
		for ev, err := range st.Events() {
			if err != nil {
				t.Fatal(err)
			}
			switch ev.Type {
			case client.EventStdout:
				stdout.Write(ev.Data)
				lines++
			case client.EventStderr:
				stderr.Write(ev.Data)
			case client.EventExit:
				exit = ev.ExitCode
			}
		}
		if stdout.String() != "line1\nline2\nline3\n" || stderr.String() != "oops\n" || exit != 3 {
			t.Errorf("stream: stdout %q stderr %q exit %d", stdout.String(), stderr.String(), exit)
		}
		if lines < 2 {
			t.Errorf("stdout came in %d event(s), not as it was printed", lines)
		}
	})

	t.Run("processes", func(t *testing.T) {
		p, err := c.StartProcess(ctx, sb.ID, client.Command("sh", "-c", "echo started; sleep 1; echo finished"), "sdk-job")
		if err != nil {
			t.Fatal(err)
		}
		if p.Tag != "sdk-job" || p.PID <= 0 {
			t.Fatalf("StartProcess = %+v", p)
		}
		sleeper, err := c.StartProcess(ctx, sb.ID, client.Command("sleep", "1000"), "")
		if err != nil {
			t.Fatal(err)
		}
		ps, err := c.ListProcesses(ctx, sb.ID)
		if err != nil || !slices.ContainsFunc(ps, func(x client.Process) bool { return x.Tag == sleeper.Tag }) {
			t.Fatalf("ListProcesses = %+v, %v", ps, err)
		}
		st, err := c.ProcessStream(ctx, sb.ID, "sdk-job")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var out bytes.Buffer
		exit := -1
		for ev, err := range st.Events() {
			if err != nil {
				t.Fatal(err)
			}
			switch ev.Type {
			case client.EventStdout:
				out.Write(ev.Data)
			case client.EventExit:
				exit = ev.ExitCode
			}
		}
		if out.String() != "started\nfinished\n" || exit != 0 {
			t.Errorf("process stream: %q exit %d", out.String(), exit)
		}
		if err := c.KillProcess(ctx, sb.ID, sleeper.Tag, client.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = c.KillProcess(ctx, sb.ID, sleeper.Tag, "")
		if !client.IsNotFound(err) {
			t.Errorf("killing a killed process: %v, want not_found", err)
		}
	})

	t.Run("terminal", func(t *testing.T) {
		term, err := c.Terminal(ctx, sb.ID, client.TerminalOptions{Cmd: "/bin/bash", Cols: 80, Rows: 24})
		if err != nil {
			t.Fatal(err)
		}
		defer term.Close()
		if !strings.HasPrefix(term.Tag, "pty-") || term.PID <= 0 {
			t.Errorf("terminal %q pid %d", term.Tag, term.PID)
		}
		if err := term.Resize(100, 30); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(term, "echo hi-$((40+2)); stty size\n"); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		for !strings.Contains(out.String(), "hi-42") || !strings.Contains(out.String(), "30 100") {
			ev, err := term.Recv()
			if err != nil {
				t.Fatalf("waiting for the echo: %v; output %q", err, out.String())
			}
			out.Write(ev.Data)
		}
		if err := term.Kill(); err != nil {
			t.Fatal(err)
		}
		exit := -1
		for ev, err := range term.Events() {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type == client.TerminalExit {
				exit = ev.ExitCode
			}
		}
		if exit <= 0 {
			t.Errorf("killed terminal exit %d", exit)
		}
	})

	t.Run("files", func(t *testing.T) {
		if _, err := c.MakeDir(ctx, sb.ID, "/root/sdk", true); err != nil {
			t.Fatal(err)
		}
		w, err := c.WatchDir(ctx, sb.ID, "/root/sdk", false)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()

		const size = 16 << 20
		data := make([]byte, size)
		rand.Read(data)
		want := sha256.Sum256(data)
		// A reader that is not a bytes.Reader: the SDK cannot know its size.
		if err := c.UploadFile(ctx, sb.ID, "/root/sdk/big.bin", io.MultiReader(bytes.NewReader(data[:size/2]), bytes.NewReader(data[size/2:]))); err != nil {
			t.Fatal(err)
		}
		ev, err := w.Recv()
		if err != nil || ev.Op != client.FileCreated || ev.Path != "/root/sdk/big.bin" {
			t.Errorf("watch: %+v, %v", ev, err)
		}
		rc, err := c.ReadFile(ctx, sb.ID, "/root/sdk/big.bin")
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("download: %d bytes, %v, sha256 match %v", n, err, bytes.Equal(h.Sum(nil), want[:]))
		}
		if err := c.WriteFile(ctx, sb.ID, "/root/sdk/small.txt", []byte("small\n")); err != nil {
			t.Fatal(err)
		}
		es, err := c.ListDir(ctx, sb.ID, "/root/sdk", 1)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name)
			if e.Name == "big.bin" && (e.Size != size || e.Type != client.FileTypeFile) {
				t.Errorf("big.bin listed as %+v", e)
			}
		}
		if !slices.Equal(names, []string{"big.bin", "small.txt"}) {
			t.Errorf("ListDir names %q", names)
		}
		_, err = c.ReadFile(ctx, sb.ID, "/root/sdk/none")
		if !client.IsNotFound(err) {
			t.Errorf("missing file: %v", err)
		}
	})

	t.Run("pause resume destroy", func(t *testing.T) {
		p, err := c.PauseSandbox(ctx, sb.ID)
		if err != nil || p.Status != client.StatusPaused {
			t.Fatalf("PauseSandbox = %+v, %v", p, err)
		}
		_, err = c.Exec(ctx, sb.ID, client.Command("true"))
		if !client.IsConflict(err) {
			t.Errorf("exec in a paused sandbox: %v, want conflict", err)
		}
		r, err := c.ResumeSandbox(ctx, sb.ID)
		if err != nil || r.Status != client.StatusRunning {
			t.Fatalf("ResumeSandbox = %+v, %v", r, err)
		}
		res, err := c.Exec(ctx, sb.ID, client.Command("cat", "/root/sdk/small.txt"))
		if err != nil || string(res.Stdout) != "small\n" {
			t.Fatalf("after resume: %+v, %v", res, err)
		}
		if err := c.DestroySandbox(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
		destroyed = true
		got, err := c.GetSandbox(ctx, sb.ID)
		if err != nil || got.Status != client.StatusStopped {
			t.Fatalf("GetSandbox after destroy = %+v, %v", got, err)
		}
	})
}
