package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExecRunKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// A child that ignores SIGTERM, like a stuck compiler, and a
		// parent waiting for it.
		done <- execRunGrace(ctx, command{Name: "sh", Args: []string{"-c",
			`sh -c 'trap "" TERM; echo $$ > ` + pidFile + `; while :; do sleep 0.1; done' & wait`}}, time.Second)
	}()
	var pid int
	for deadline := time.Now().Add(10 * time.Second); pid == 0; {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			t.Fatal("child never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("execRun did not return after cancel")
	}
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(pid, 0) == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("child %d survived its cancelled parent", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExecRunOutput(t *testing.T) {
	var log strings.Builder
	var lines []string
	err := execRun(context.Background(), command{
		Name: "sh", Args: []string{"-c", "echo one; echo two >&2; printf three"},
		Env: []string{"X=1"}, Log: &log, Line: func(l string) { lines = append(lines, l) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, "|"); got != "one|two|three" {
		t.Fatalf("lines = %q", got)
	}
	if log.String() != "one\ntwo\nthree" {
		t.Fatalf("log = %q", log.String())
	}
	if err := execRun(context.Background(), command{Name: "false"}); err == nil {
		t.Fatal("false succeeded")
	}
}

func TestKbuildLine(t *testing.T) {
	tests := []struct {
		in        string
		verb, obj string
		ok        bool
	}{
		{"  CC      kernel/fork.o", "CC", "kernel/fork.o", true},
		{"  LD      vmlinux.o", "LD", "vmlinux.o", true},
		{"  HOSTCC  scripts/basic/fixdep", "HOSTCC", "scripts/basic/fixdep", true},
		{"make[1]: Entering directory", "", "", false},
		{"  cc1: warning: something odd", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		verb, obj, ok := kbuildLine(tt.in)
		if verb != tt.verb || obj != tt.obj || ok != tt.ok {
			t.Errorf("kbuildLine(%q) = %q, %q, %v", tt.in, verb, obj, ok)
		}
	}
}

func TestConfigMismatches(t *testing.T) {
	frag := []byte("# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=16\n\n")
	tests := []struct {
		name   string
		config string
		want   string
	}{
		{"all met", "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=16\n", ""},
		{"unset means n", "CONFIG_A=y\nCONFIG_C=16\n", ""},
		{"dropped", "# CONFIG_A is not set\nCONFIG_C=16\n", "CONFIG_A=y (got n)"},
		{"wrong value", "CONFIG_A=y\nCONFIG_C=8\n", "CONFIG_C=16 (got 8)"},
		{"forced on", "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=16\n", "CONFIG_B=n (got y)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(configMismatches(frag, []byte(tt.config)), ", "); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKernelFragmentParses(t *testing.T) {
	// Every non-comment line of the embedded fragment is a setting.
	n := 0
	for _, l := range strings.Split(string(kernelFragment), "\n") {
		l = strings.TrimSpace(l)
		if _, _, ok := parseConfigLine(l); ok {
			n++
			continue
		}
		if l != "" && !strings.HasPrefix(l, "#") {
			t.Errorf("not a config line: %q", l)
		}
	}
	if n < 50 {
		t.Fatalf("fragment has %d settings, want the full list", n)
	}
}

func TestImageSize(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		content, min, want int64
	}{
		{250 * mib, 2 * gib, 2 * gib}, // small: the minimum
		{0, 0, 512 * mib},             // headroom only
		{2 * gib, gib, 3072 * mib},    // 2048 + 512 + 512
		{100*mib + 1, 0, 640 * mib},   // 125 + 512 = 637 → 640
	}
	for _, tt := range tests {
		if got := imageSize(tt.content, tt.min); got != tt.want {
			t.Errorf("imageSize(%d, %d) = %d MiB, want %d MiB", tt.content, tt.min, got/mib, tt.want/mib)
		}
	}
}
