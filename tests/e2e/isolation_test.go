package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// agentProc is a running `wrenn agent`.
type agentProc struct {
	cmd    *exec.Cmd
	addr   string
	done   chan error
	logs   *logBuffer
	exited bool // done has been received from
}

var agentListenLine = regexp.MustCompile(`wrenn agent listening.* addr=(\S+)`)

// launchAgent starts cmd, a `wrenn agent`, keeping its log; the address
// serving's first group captures from a log line is sent on addr, and the
// agent's exit on the proc's done.
func launchAgent(t testing.TB, cmd *exec.Cmd, serving *regexp.Regexp) (_ *agentProc, addr <-chan string) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{cmd: cmd, done: make(chan error, 1), logs: &logBuffer{}}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			a.logs.WriteString(sc.Text() + "\n")
			if m := serving.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		a.done <- cmd.Wait()
	}()
	return a, found
}

// startAgent runs `wrenn agent` on listen with dataDir and waits until it serves.
func startAgent(t testing.TB, dataDir, listen, token string) *agentProc {
	t.Helper()
	images := requireVMs(t)
	cmd := exec.Command(wrennBin, "agent", "--listen", listen, "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), "WRENN_AGENT_TOKEN="+token, envImagesDir+"="+images, "WRENN_SOURCE_DIR="+repoRoot())
	a, addr := launchAgent(t, cmd, agentListenLine)
	t.Cleanup(a.stop)
	select {
	case a.addr = <-addr:
	case err := <-a.done:
		a.exited = true
		t.Fatalf("wrenn agent exited: %v\n%s", err, a.logs)
	case <-time.After(10 * time.Minute):
		t.Fatalf("wrenn agent did not listen\n%s", a.logs)
	}
	return a
}

// apart is a control plane and a host agent in processes of their own,
// as on several machines, with the agent's VMs killed at cleanup.
type apart struct {
	tb      testing.TB
	env     []string // the control plane's, besides how to reach the agent
	dataDir string   // the agent's
	srvData string   // the control plane's
	sock    string
	token   string
	agent   *agentProc
	s       *server
}

func startApart(tb testing.TB, token string) *apart {
	tb.Helper()
	return startApartEnv(tb, token)
}

// startApartEnv is startApart with more environment for the control plane.
func startApartEnv(tb testing.TB, token string, env ...string) *apart {
	tb.Helper()
	a := &apart{tb: tb, dataDir: shortTempDir(tb), srvData: shortTempDir(tb), token: token, env: env}
	requireVMs(tb)
	tb.Cleanup(func() { killVMs(tb, a.dataDir) })
	a.sock = "unix:" + filepath.Join(a.dataDir, "ag.sock")
	a.agent = startAgent(tb, a.dataDir, a.sock, token)
	a.s = a.startServer()
	return a
}

// startServer starts a control plane that uses the agent.
func (a *apart) startServer() *server {
	a.tb.Helper()
	return startServer(a.tb, a.srvData, append([]string{"WRENN_AGENT_ADDR=" + a.sock, "WRENN_AGENT_TOKEN=" + a.token}, a.env...)...)
}

// restartAgent kills the agent as a crash would and starts another.
func (a *apart) restartAgent() {
	a.tb.Helper()
	a.agent.kill()
	a.agent = startAgent(a.tb, a.dataDir, a.sock, a.token)
}

// kill ends the agent as a crash would: its ready network slots stay
// behind for the next agent to sweep.
func (a *agentProc) kill() {
	if a.exited {
		return
	}
	_ = a.cmd.Process.Kill()
	<-a.done
	a.exited = true
}

// stop ends the agent as an operator would, so it removes what it keeps
// ready; stopping a stopped agent does nothing.
func (a *agentProc) stop() {
	if a.exited {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
	a.exited = true
}

// hostIPv4s lists the host's own IPv4 addresses.
func hostIPv4s(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				ips = append(ips, strings.SplitN(f[i+1], "/", 2)[0])
			}
		}
	}
	return ips
}

// connectScript exits 0 if a TCP connection to argv[1]:argv[2] succeeds
// within 2 s.
const connectScript = `import socket, sys
s = socket.socket(); s.settimeout(2)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)`

func (s *server) canConnect(key hdr, id, ip string, port int) bool {
	s.tb.Helper()
	r := s.exec(key, id, "python3", "-c", connectScript, ip, strconv.Itoa(port))
	return r.ExitCode == 0
}

// TestIsolation shows that from inside a sandbox the control plane, the
// host agent and another sandbox are all unreachable, on every address
// the host has, while the host itself can reach a server in the sandbox.
func TestIsolation(t *testing.T) {
	dataDir := shortTempDir(t)
	requireVMs(t)
	t.Cleanup(func() { killVMs(t, dataDir) })
	agentPort := freePort(t)
	agent := startAgent(t, dataDir, fmt.Sprintf("0.0.0.0:%d", agentPort), "isolation-token")
	_ = agent
	apiPort := freePort(t)
	s := startServerListen(t, fmt.Sprintf("0.0.0.0:%d", apiPort), dataDir,
		"WRENN_AGENT_ADDR="+fmt.Sprintf("127.0.0.1:%d", agentPort), "WRENN_AGENT_TOKEN=isolation-token")
	key := s.account("iso@example.com")

	a := s.create(key, map[string]any{})
	b := s.create(key, map[string]any{})
	defer s.do("DELETE", "/v1/sandboxes/"+a.ID, key, nil)
	defer s.do("DELETE", "/v1/sandboxes/"+b.ID, key, nil)
	for _, sb := range []sandbox{a, b} {
		var res execResult
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/exec", key, map[string]any{
			"cmd": "sh", "args": []string{"-c", "nohup python3 -m http.server 8000 >/dev/null 2>&1 & sleep 1; echo started"},
		}, &res)
	}

	// Positive control: the host reaches each sandbox's server through its
	// host_ip, so "unreachable" below is not a network that is simply down.
	for _, sb := range []sandbox{a, b} {
		eventually(t, 20*time.Second, func() string {
			resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + net.JoinHostPort(sb.HostIP, "8000") + "/")
			if err != nil {
				return fmt.Sprintf("host → %s (%s): %v", sb.ID, sb.HostIP, err)
			}
			resp.Body.Close()
			return ""
		})
	}
	if !s.canConnect(key, a.ID, "127.0.0.1", 8000) {
		t.Fatal("a sandbox cannot reach its own server: the probe is broken")
	}

	for _, ip := range hostIPv4s(t) {
		for _, port := range []int{apiPort, agentPort} {
			if s.canConnect(key, a.ID, ip, port) {
				t.Errorf("sandbox reaches the host at %s:%d", ip, port)
			}
		}
	}
	for _, target := range []string{b.HostIP, a.HostIP} {
		if s.canConnect(key, a.ID, target, 8000) {
			t.Errorf("sandbox %s reaches %s:8000", a.ID, target)
		}
	}
	if s.canConnect(key, a.ID, "169.254.169.254", 80) {
		t.Error("sandbox reaches the metadata address")
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
