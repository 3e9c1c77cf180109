package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// Control planes that can fail (issue 13): two real `wrenn server`
// replicas on one PostgreSQL database, with no agent of their own and a
// fleet listener each, and three real agents joined with both URLs, each
// in its own network namespace (newFleetAgent). Requests alternate
// between the replicas as a load balancer would send them; background
// jobs run under leases (internal/lease), each on one replica.

var (
	holderLine   = regexp.MustCompile(`msg="background jobs run under leases" holder=(\S+)`)
	acquiredLine = regexp.MustCompile(`msg="lease acquired: running the job here" lease=(\S+) holder=(\S+)`)
)

// plane is one replica of the control plane.
type plane struct {
	*server
	name   string
	holder string
}

// startPlane starts replica name of the control plane on the PostgreSQL
// database dbURL: no agent of its own, a fleet listener on port, the
// replicas' JWT secret, and env.
func startPlane(t *testing.T, name, port, dbURL, secret string, env ...string) *plane {
	t.Helper()
	s := startServer(t, shortTempDir(t), append([]string{"WRENN_AGENT_ADDR=none", "WRENN_FLEET_LISTEN=:" + port, "WRENN_HOST_DEAD_AFTER=5s",
		"DATABASE_URL=" + dbURL, "WRENN_JWT_SECRET=" + secret}, env...)...)
	p := &plane{server: s, name: name}
	for deadline := time.Now().Add(10 * time.Second); p.holder == ""; time.Sleep(50 * time.Millisecond) {
		if m := holderLine.FindStringSubmatch(s.logs.String()); m != nil {
			p.holder = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("replica %s does not name itself as a lease holder\n%s", name, s.logs)
		}
	}
	return p
}

// leasesAcquired lists the leases the log says were taken, in order.
func (p *plane) leasesAcquired() []string {
	var names []string
	for _, m := range acquiredLine.FindAllStringSubmatch(p.logs.String(), -1) {
		names = append(names, m[1])
	}
	return names
}

// TestControlPlaneFailover: any replica serves any request on any joined
// host (REST, the exec stream, a terminal, a background process's stream
// opened on the other replica), background jobs run on one replica only;
// a replica killed mid-traffic loses nothing: requests sent to the
// survivor all succeed (one the dead one was serving is retried once),
// the agents' heartbeats fail over so every host stays online, and the
// survivor takes over the background jobs within the lease's bound: it
// reaps an idle sandbox and marks a killed agent's host unreachable.
func TestControlPlaneFailover(t *testing.T) {
	requireVMs(t)
	if !slices.Contains(storetest.Engines(t), store.EnginePostgres) {
		t.Skip("needs PostgreSQL: " + storetest.EnvDatabaseURL)
	}
	dbURL := storetest.MustCreateDatabase(t)
	const leaseTTL = 3 * time.Second
	secret := strings.Repeat("replicas-share-this-secret-", 2)
	_, portA, _ := strings.Cut(freeAddr(t), ":")
	_, portB, _ := strings.Cut(freeAddr(t), ":")
	a := startPlane(t, "a", portA, dbURL, secret, "WRENN_LEASE_TTL="+leaseTTL.String())
	var b *plane
	var f *testFleet
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []*plane{a, b} {
				if p != nil {
					var said []string // what it said above debug
					for _, l := range strings.Split(p.logs.String(), "\n") {
						if !strings.Contains(l, "level=DEBUG") {
							said = append(said, l)
						}
					}
					t.Logf("replica %s's log:\n%s", p.name, tail(strings.Join(said, "\n"), 300))
					// All of it, debug lines too, where go test -artifacts keeps it.
					_ = os.WriteFile(filepath.Join(t.ArtifactDir(), "replica-"+p.name+".log"), []byte(p.logs.String()), 0o644)
				}
			}
			if f == nil {
				return
			}
			for i, ag := range f.agents {
				if ag.proc != nil {
					_ = os.WriteFile(filepath.Join(t.ArtifactDir(), fmt.Sprintf("agent-%d.log", i)), []byte(ag.proc.logs.String()), 0o644)
				}
			}
		}
	})
	f = newTestFleet(t, a.server)
	jwt, key := f.jwt, f.key

	// The agents join with both replicas' URLs (b is not up yet: a
	// registers them), a first: their heartbeats go to a. Two say them
	// comma-separated, one with --join twice.
	for i := range 2 {
		f.join(i, nil, portA, portB)
	}
	id, token := f.addHost()
	ag := newFleetAgent(t, 2)
	f.start(ag, id, token, "--join", "https://"+ag.gateway+":"+portA, "--join", "https://"+ag.gateway+":"+portB)
	agents := f.agents

	db, err := store.Open(t.Context(), store.Config{DatabaseURL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	jobs := []string{"heartbeat-check", "stats"}
	for _, ag := range agents {
		jobs = append(jobs, "reconcile/"+ag.hostID)
	}
	sort.Strings(jobs)
	// heldBy waits until p holds every job's lease, and fails past within.
	heldBy := func(p *plane, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			got, err := db.LeaseHolders(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var mine []string
			for name, h := range got {
				if h == p.holder {
					mine = append(mine, name)
				}
			}
			sort.Strings(mine)
			if slices.Equal(mine, jobs) {
				return time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("leases %v after %v, want %s (%s) to hold %v", got, within, p.name, p.holder, jobs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	heldBy(a, 30*time.Second) // a was alone: its jobs are all there

	b = startPlane(t, "b", portB, dbURL, secret, "WRENN_LEASE_TTL="+leaseTTL.String())
	planes := []*plane{a, b}
	hostStatuses := func(p *plane) []string {
		t.Helper()
		var out []string
		for i := range agents {
			out = append(out, f.on(p.server).hostStatus(i)) // a's JWT, on either replica
		}
		return out
	}
	for deadline := time.Now().Add(15 * time.Second); !slices.Equal(hostStatuses(b), []string{"online", "online", "online"}); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("hosts %v, want all online", hostStatuses(b))
		}
	}

	// The traffic: request i goes to replica i%2, unless a is dead (then
	// to b, as a load balancer would); a request a was serving when it
	// died is retried once, on b.
	var killed atomic.Bool
	var n, retried int
	pick := func() (*plane, bool) {
		n++
		if killed.Load() {
			return b, false
		}
		p := planes[n%2]
		return p, p == a
	}
	// call runs one request through f on a replica, retrying as above.
	call := func(what string, f func(p *plane) error) {
		t.Helper()
		p, mayDie := pick()
		err := f(p)
		if err != nil && mayDie && killed.Load() {
			t.Logf("%s on replica a as it died: %v; retried on b", what, err)
			retried++
			err = f(b)
		}
		if err != nil {
			t.Fatalf("%s on replica %s: %v", what, p.name, err)
		}
	}
	want := func(p *plane, code int, method, path string, body any, v any, also ...int) error {
		got, out, err := p.send(method, path, key, body)
		if err != nil {
			return err
		}
		if got != code && !slices.Contains(also, got) {
			return fmt.Errorf("%s %s = %d, want %d: %s", method, path, got, code, out)
		}
		if v != nil {
			return json.Unmarshal(out, v)
		}
		return nil
	}
	body := map[string]any{"template": "minimal", "memory_mb": 256, "timeout_sec": 0}
	hostsUsed := map[int]bool{}
	// use is what is done with a sandbox, each step on the next replica.
	use := func(sb sandbox, deep bool) {
		t.Helper()
		call("exec", func(p *plane) error {
			var r execResult
			if err := want(p, 200, "POST", "/v1/sandboxes/"+sb.ID+"/exec", map[string]any{"cmd": "echo", "args": []string{"hi", sb.ID}}, &r); err != nil {
				return err
			}
			if r.ExitCode != 0 || r.Stdout != "hi "+sb.ID+"\n" {
				return fmt.Errorf("exec: %+v", r)
			}
			return nil
		})
		call("exec stream", func(p *plane) error {
			return streamExec(p.server, key, sb.ID, "echo streamed-"+sb.ID, "streamed-"+sb.ID+"\n")
		})
		content := "written through a replica " + sb.ID
		call("file write", func(p *plane) error { return writeFile(p.server, key, sb.ID, "/tmp/replica.txt", content) })
		call("file read", func(p *plane) error {
			got, out, err := p.send("POST", "/v1/sandboxes/"+sb.ID+"/files/read", key, map[string]any{"path": "/tmp/replica.txt"})
			if err != nil {
				return err
			}
			if got != 200 || string(out) != content {
				return fmt.Errorf("read = %d %q, want %q", got, out, content)
			}
			return nil
		})
		if deep {
			// A terminal on one replica; a background process started on
			// one and its stream opened on the other.
			p, _ := pick()
			c := p.mustDialPty(t, key, sb.ID)
			c.send(ptyMessage{Type: "start", Cmd: "/bin/sh", Args: []string{"-c", "echo pty-via-" + p.name}, Cols: 80, Rows: 24})
			c.mustNext("started")
			if code := c.waitExit(); code != 0 || !strings.Contains(c.out.String(), "pty-via-"+p.name) {
				t.Fatalf("terminal on replica %s: exit %d, output %q", p.name, code, c.out.String())
			}
			p, _ = pick()
			tag := "bg-" + p.name
			p.must(202, "POST", "/v1/sandboxes/"+sb.ID+"/exec", key, map[string]any{"cmd": "/bin/sh",
				"args": []string{"-c", "sleep 2; echo from-the-agent"}, "background": true, "tag": tag}, nil)
			q, _ := pick()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			ps, code := q.dialProcess(ctx, key, sb.ID, tag)
			if code != http.StatusSwitchingProtocols {
				t.Fatalf("process stream on replica %s = %d", q.name, code)
			}
			ps.readUntil(ctx, "the process's exit", nil)
			cancel()
			if ps.stdout.String() != "from-the-agent\n" || ps.exit == nil || *ps.exit != 0 {
				t.Fatalf("a process started on replica %s, streamed on %s: stdout %q exit %v", p.name, q.name, ps.stdout.String(), ps.exit)
			}
		}
	}
	// round is three sandboxes' lives at once (so that they land on
	// different hosts), each step on the next replica.
	round := func(deep bool) {
		t.Helper()
		sbs := make([]sandbox, 3)
		for i := range sbs {
			call("create", func(p *plane) error { return want(p, 201, "POST", "/v1/sandboxes", body, &sbs[i]) })
			hostsUsed[f.hostOf(sbs[i])] = true
		}
		for _, sb := range sbs {
			use(sb, deep)
		}
		for _, sb := range sbs {
			// A destroy a dead replica was serving may have happened:
			// its retry finds the sandbox stopped already.
			call("destroy", func(p *plane) error { return want(p, 204, "DELETE", "/v1/sandboxes/"+sb.ID, nil, nil, 404, 409) })
		}
	}
	idle := func(timeout int) sandbox {
		t.Helper()
		var sb sandbox
		b.must(201, "POST", "/v1/sandboxes", key, map[string]any{"template": "minimal", "memory_mb": 256, "timeout_sec": timeout}, &sb)
		return sb
	}
	// waitStopped waits for sb's record to stop being running. It reads
	// the store, not GET /v1/sandboxes/{id}: looking at a running sandbox
	// counts as activity, which would keep it from its timeout.
	waitStopped := func(sb sandbox, within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); ; time.Sleep(250 * time.Millisecond) {
			recs, err := db.SandboxesByStatus(t.Context(), "running")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(recs, func(r *wrenn.Sandbox) bool { return r.ID == sb.ID }) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("idle sandbox %s is still running %v after its create", sb.ID, within)
			}
		}
		var got sandbox
		if b.must(200, "GET", "/v1/sandboxes/"+sb.ID, key, nil, &got); got.Status != "stopped" {
			t.Fatalf("idle sandbox %s is %s, want stopped", sb.ID, got.Status)
		}
	}
	reaped := func(p *plane, id string) bool {
		return regexp.MustCompile(`msg="idle sandbox stopped".*sandbox_id=` + id).MatchString(p.logs.String())
	}
	// waitReaped is reaped, given the reaper the time to say so: it
	// records the sandbox stopped before it ends the VM and logs.
	waitReaped := func(p *plane, id string) bool {
		for deadline := time.Now().Add(15 * time.Second); !reaped(p, id); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				return false
			}
		}
		return true
	}

	// Both replicas up: every operation served by either; the jobs stay
	// on a, and b runs none (nothing in its log says it took a lease): an
	// idle sandbox is reaped once, by a.
	early := idle(4)
	for range 2 {
		round(true)
	}
	waitStopped(early, 30*time.Second)
	if !waitReaped(a, early.ID) || reaped(b, early.ID) {
		t.Fatalf("the idle sandbox %s was not reaped by a alone: a says %v, b says %v", early.ID, reaped(a, early.ID), reaped(b, early.ID))
	}
	heldBy(a, 0)
	if got := b.leasesAcquired(); len(got) != 0 {
		t.Fatalf("replica b took leases %v while a held them", got)
	}
	if got := a.leasesAcquired(); !slices.Equal(sorted(got), jobs) {
		t.Fatalf("replica a took leases %v, want each of %v once", got, jobs)
	}

	// a is killed mid-traffic, with an idle sandbox it would have reaped.
	// While the traffic goes on, a watcher notes when b holds every
	// lease and any host not online, from the kill until 8s after it
	// (past WRENN_HOST_DEAD_AFTER, which a host whose heartbeats went
	// nowhere would have exceeded).
	late := idle(20)
	type watched struct {
		takeover time.Duration // 0: not within 30s
		offline  []string
	}
	watch := make(chan watched, 1)
	killing := make(chan struct{})
	go func() {
		time.Sleep(3 * time.Second)
		killed.Store(true)
		_ = a.cmd.Process.Kill()
		close(killing)
		at := time.Now()
		<-a.done
		var w watched
		for time.Since(at) < 30*time.Second && (w.takeover == 0 || time.Since(at) < 8*time.Second) {
			if w.takeover == 0 {
				got, err := db.LeaseHolders(context.Background())
				var mine []string
				for name, h := range got {
					if h == b.holder {
						mine = append(mine, name)
					}
				}
				if err == nil && slices.Equal(sorted(mine), jobs) {
					w.takeover = time.Since(at)
				}
			}
			if time.Since(at) < 8*time.Second {
				for _, ag := range agents {
					code, out, err := b.send("GET", "/v1/hosts/"+ag.hostID, jwt, nil)
					if err != nil || code != 200 || !strings.Contains(string(out), `"status":"online"`) {
						w.offline = append(w.offline, fmt.Sprintf("%v: %d %v %s", time.Since(at), code, err, out))
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		watch <- w
	}()
	for {
		round(false)
		select {
		case <-killing:
		default:
			continue
		}
		break
	}
	for range 2 {
		round(false) // on b alone
	}
	t.Logf("%d requests, %d retried; sandboxes landed on %d hosts", n, retried, len(hostsUsed))
	if len(hostsUsed) != 3 {
		t.Fatalf("sandboxes landed on hosts %v, want all three", hostsUsed)
	}

	// b took every job over within the lease's bound (TTL*4/3 after a's
	// last renewal, plus a query), the agents' heartbeats failed over to
	// b, and the hosts stayed online.
	w := <-watch
	if w.takeover == 0 || w.takeover > leaseTTL*4/3+time.Second {
		t.Fatalf("replica b held every lease %v after a's kill, want within %v", w.takeover, leaseTTL*4/3+time.Second)
	}
	t.Logf("replica b held every lease %v after a's kill", w.takeover)
	if len(w.offline) > 0 {
		t.Fatalf("hosts not online after a's kill: %v", w.offline)
	}
	if got := b.leasesAcquired(); !slices.Equal(sorted(got), jobs) {
		t.Fatalf("replica b took leases %v, want each of %v once", got, jobs)
	}
	for i, ag := range agents {
		if !strings.Contains(ag.proc.logs.String(), "heartbeat: failed over to another control plane") {
			t.Fatalf("agent %d did not fail over\n%s", i, ag.proc.logs)
		}
	}
	// b reaps the idle sandbox a would have.
	waitStopped(late, 60*time.Second)
	if !waitReaped(b, late.ID) {
		t.Fatalf("replica b's log does not say it reaped %s", late.ID)
	}
	// b's heartbeat check marks a killed agent's host unreachable.
	agents[2].proc.kill()
	for deadline := time.Now().Add(20 * time.Second); hostStatuses(b)[2] != "unreachable"; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("host 2 is %s 20s after its agent's kill", hostStatuses(b)[2])
		}
	}
	if !strings.Contains(b.logs.String(), `msg="host unreachable: no heartbeat" host_id=`+agents[2].hostID) {
		t.Fatalf("replica b's log does not say it marked host 2 unreachable\n%s", b.logs)
	}
	round(true) // on the hosts left

	// The agent back, with no --join: the URLs it keeps, a's first, take
	// it to b; its host is online again.
	agents[2].start()
	for deadline := time.Now().Add(20 * time.Second); hostStatuses(b)[2] != "online"; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("host 2 is %s 20s after its agent came back\n%s", hostStatuses(b)[2], agents[2].proc.logs)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// streamExec runs script in sandbox id over the exec stream (WebSocket)
// and wants stdout and exit code 0; errors are returned, not fatal, so a
// caller may retry on another replica.
func streamExec(s *server, key hdr, id, script, stdout string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := "ws" + strings.TrimPrefix(s.url, "http") + "/v1/sandboxes/" + id + "/exec/stream"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {key["X-API-Key"]}}})
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "start", "cmd": "sh", "args": []string{"-c", script}}); err != nil {
		return err
	}
	var out strings.Builder
	for {
		var ev struct {
			Type     string `json:"type"`
			Data     string `json:"data"`
			ExitCode *int   `json:"exit_code"`
		}
		if err := wsjson.Read(ctx, conn, &ev); err != nil {
			return fmt.Errorf("read the stream: %w (stdout %q)", err, out.String())
		}
		switch ev.Type {
		case "stdout":
			out.WriteString(ev.Data)
		case "exit":
			if ev.ExitCode == nil || *ev.ExitCode != 0 || out.String() != stdout {
				return fmt.Errorf("stream: exit %v, stdout %q, want 0 and %q", ev.ExitCode, out.String(), stdout)
			}
			return nil
		}
	}
}

// writeFile uploads content to path in sandbox id; errors are returned.
func writeFile(s *server, key hdr, id, path, content string) error {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("path", path)
	fw, err := mw.CreateFormFile("file", "data")
	if err != nil {
		return err
	}
	_, _ = io.WriteString(fw, content)
	if err := mw.Close(); err != nil {
		return err
	}
	req, err := http.NewRequest("POST", s.url+"/v1/sandboxes/"+id+"/files/write", &buf)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-API-Key", key["X-API-Key"])
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 204 {
		return fmt.Errorf("write = %d: %s", resp.StatusCode, out)
	}
	return nil
}
