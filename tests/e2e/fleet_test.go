package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// The fleet of issue 13, whole: two control-plane replicas on one
// PostgreSQL database and three joined agents, each in a network
// namespace of its own with its own data dir (newFleetAgent), sharing
// one store directory on another file system than their data dirs, as an
// NFS mount would be. Requests go to either replica, as a load balancer
// would send them.

// TestFleet is the "Must show", in one run: 60 creates spread
// within ±20% over the three hosts; a tagged create lands on the tagged
// host; a drained host gets nothing new; a template made on host 0
// creates sandboxes on hosts 1 and 2; a sandbox paused on host 0 resumes
// on host 1 with its files and processes; one replica killed (kill -9)
// in the middle of traffic, the other serves every request; an agent
// killed: its host is unreachable within 10 s, its sandboxes missing,
// creates go elsewhere; a host's delete-preview lists exactly what its
// forced delete then destroys.
func TestFleet(t *testing.T) {
	requireVMs(t)
	if !slices.Contains(storetest.Engines(t), store.EnginePostgres) {
		t.Skip("needs PostgreSQL: " + storetest.EnvDatabaseURL)
	}
	dbURL := storetest.MustCreateDatabase(t)
	shared, err := os.MkdirTemp("/dev/shm", "wrfleet")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })

	// Two replicas; the team may hold the 60 sandboxes and more.
	secret := strings.Repeat("the-fleet-shares-this-", 2)
	_, portA, _ := strings.Cut(freeAddr(t), ":")
	_, portB, _ := strings.Cut(freeAddr(t), ":")
	env := []string{"WRENN_LEASE_TTL=3s", "WRENN_QUOTA_SANDBOXES=100", "WRENN_QUOTA_VCPUS=100", "WRENN_QUOTA_MEMORY_MB=40000"}
	a := startPlane(t, "a", portA, dbURL, secret, env...)
	b := startPlane(t, "b", portB, dbURL, secret, env...)
	planes := []*plane{a, b}
	f := newTestFleet(t, a.server)
	jwt := f.jwt
	var k apiKey
	b.must(201, "POST", "/v1/api-keys", jwt, map[string]string{"name": "e2e"}, &k) // a's login, on b
	key := hdr{"X-API-Key": *k.Key}
	f.key = key

	// Three hosts, tagged h0, h1, h2 so that a create can ask for one;
	// each agent admits 24 vCPUs (2 cores here × 12) and knows both
	// replicas.
	for i := range 3 {
		f.join(i, []string{"WRENN_SHARED_DIR=" + shared, "WRENN_CPU_OVERCOMMIT=12"}, portA, portB)
		f.on(b.server).tag(i, tagOf(i))
	}
	agents := f.agents
	hostStatus := func(p *plane, i int) string {
		t.Helper()
		return f.on(p.server).hostStatus(i)
	}
	waitHost := func(p *plane, i int, want string, within time.Duration) time.Duration {
		t.Helper()
		return f.on(p.server).waitHost(i, want, within)
	}
	for i := range agents {
		waitHost(b, i, "online", 15*time.Second)
	}
	hostOf := f.hostOf
	// create makes a sandbox through replica p (the replicas learn the
	// base templates from the agents they dial: a first create may come
	// before they have).
	create := func(p *plane, body map[string]any) sandbox {
		t.Helper()
		return f.on(p.server).create(body)
	}
	body := func(tags ...string) map[string]any {
		m := map[string]any{"template": "minimal", "memory_mb": 256, "timeout_sec": 0}
		if len(tags) > 0 {
			m["host_tags"] = tags
		}
		return m
	}
	echo := func(p *plane, sb sandbox) {
		t.Helper()
		if r := p.exec(key, sb.ID, "echo", "hi "+sb.ID); r.ExitCode != 0 || r.Stdout != "hi "+sb.ID+"\n" {
			t.Fatalf("exec in %s on replica %s: %+v", sb.ID, p.name, r)
		}
	}

	// 60 creates, alternating between the replicas, all kept: 20±4 on
	// each host. Every fifth answers an exec.
	const n = 60
	var sbs []sandbox
	per := make([]int, len(agents))
	for i := range n {
		p := planes[i%2]
		sb := create(p, body())
		if i%5 == 0 {
			echo(planes[(i+1)%2], sb)
		}
		sbs = append(sbs, sb)
		per[hostOf(sb)]++
	}
	t.Logf("%d creates per host: %v", n, per)
	for i, c := range per {
		if c < n/3*8/10 || c > n/3*12/10 {
			t.Fatalf("host %d got %d of %d creates (%v), want %d±20%%", i, c, n, per, n/3)
		}
	}
	for i, sb := range sbs {
		planes[i%2].must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	}

	// A tag: creates asking for gpu land on the one host that has it.
	b.must(204, "POST", "/v1/hosts/"+agents[2].hostID+"/tags", jwt, map[string]string{"tag": "gpu"}, nil)
	for _, p := range planes {
		sb := create(p, body("gpu"))
		if h := hostOf(sb); h != 2 {
			t.Fatalf("a create asking for tag gpu landed on host %d", h)
		}
		p.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	}

	// Draining: host 0 gets nothing new while it drains.
	a.must(200, "POST", "/v1/hosts/"+agents[0].hostID+"/drain", jwt, nil, nil)
	for i := range 6 {
		sb := create(planes[i%2], body())
		if hostOf(sb) == 0 {
			t.Fatal("a create landed on a draining host")
		}
		planes[i%2].must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	}
	b.must(200, "POST", "/v1/hosts/"+agents[0].hostID+"/undrain", jwt, nil, nil)

	// A template made on host 0 creates sandboxes on hosts 1 and 2, with
	// the file it had.
	src := create(a, body(tagOf(0)))
	if hostOf(src) != 0 {
		t.Fatalf("a create tagged h0 landed on host %d", hostOf(src))
	}
	if r := a.exec(key, src.ID, "bash", "-c", "echo made-on-host-0 > /root/fleet-file && sync"); r.ExitCode != 0 {
		t.Fatalf("write a file: %+v", r)
	}
	b.must(201, "POST", "/v1/snapshots", key, map[string]any{"sandbox_id": src.ID, "name": "fleet-made"}, nil)
	for _, i := range []int{1, 2} {
		p := planes[i%2]
		sb := create(p, map[string]any{"template": "fleet-made", "timeout_sec": 0, "host_tags": []string{tagOf(i)}})
		if hostOf(sb) != i {
			t.Fatalf("a create from the template tagged %s landed on host %d", tagOf(i), hostOf(sb))
		}
		if r := p.exec(key, sb.ID, "cat", "/root/fleet-file"); r.ExitCode != 0 || r.Stdout != "made-on-host-0\n" {
			t.Fatalf("a sandbox on host %d from host 0's template: %+v", i, r)
		}
		p.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	}

	// A sandbox paused on host 0 resumes on host 1 (hosts 0 and 2
	// drained) with its file, its process and what that process holds in
	// memory, and a background process still running.
	sb := create(a, body(tagOf(0)))
	pid, rest := startStateful(t, a.server, key, sb.ID)
	var bg struct {
		PID int `json:"pid"`
	}
	a.must(202, "POST", "/v1/sandboxes/"+sb.ID+"/exec", key, map[string]any{
		"cmd": "sleep", "args": []string{"3600"}, "background": true, "tag": "sleeper"}, &bg)
	b.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
	for _, i := range []int{0, 2} {
		a.must(200, "POST", "/v1/hosts/"+agents[i].hostID+"/drain", jwt, nil, nil)
	}
	var resumed sandbox
	b.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/resume", key, nil, &resumed)
	if resumed.Status != "running" || hostOf(resumed) != 1 {
		t.Fatalf("resumed %+v, want running on host 1", resumed)
	}
	for _, i := range []int{0, 2} {
		a.must(200, "POST", "/v1/hosts/"+agents[i].hostID+"/undrain", jwt, nil, nil)
	}
	if gotPID, count, gotRest := guestState(t, a.server, key, sb.ID); gotPID != pid || count != 2 || gotRest != rest {
		t.Fatalf("state after the move: pid %d count %d %q, want pid %d count 2 %q", gotPID, count, gotRest, pid, rest)
	}
	if r := b.exec(key, sb.ID, "bash", "-c", fmt.Sprintf("kill -0 %d && tr '\\0' ' ' </proc/%d/cmdline", bg.PID, bg.PID)); r.ExitCode != 0 || r.Stdout != "sleep 3600 " {
		t.Fatalf("the background process after the move: %+v", r)
	}
	a.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)

	// Traffic on both replicas, and replica a killed in its middle: every
	// request sent to b succeeds; a request a was serving is lost with it
	// (its client retries elsewhere). The agents' heartbeats go on to b:
	// no host stops being online.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	served := 0
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := func() error {
				code, out, err := b.send("POST", "/v1/sandboxes", key, body())
				if err != nil || code != 201 {
					return fmt.Errorf("create = %d %v: %s", code, err, out)
				}
				var sb sandbox
				if err := json.Unmarshal(out, &sb); err != nil {
					return err
				}
				code, out, err = b.send("POST", "/v1/sandboxes/"+sb.ID+"/exec", key, map[string]any{"cmd": "echo", "args": []string{"traffic"}})
				if err != nil || code != 200 || !strings.Contains(string(out), `"stdout":"traffic\n"`) {
					return fmt.Errorf("exec = %d %v: %s", code, err, out)
				}
				if err := streamExec(b.server, key, sb.ID, "echo streamed", "streamed\n"); err != nil {
					return fmt.Errorf("exec stream: %w", err)
				}
				if code, out, err := b.send("DELETE", "/v1/sandboxes/"+sb.ID, key, nil); err != nil || code != 204 {
					return fmt.Errorf("destroy = %d %v: %s", code, err, out)
				}
				return nil
			}()
			mu.Lock()
			served++
			if err != nil {
				failures = append(failures, fmt.Sprintf("round %d on b: %v", i, err))
			}
			mu.Unlock()
		}
	})
	// a serves its share until it dies.
	for range 3 {
		sb := create(a, body())
		echo(a, sb)
		a.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	}
	_ = a.cmd.Process.Kill()
	killedAt := time.Now()
	<-a.done
	for time.Since(killedAt) < 8*time.Second { // past WRENN_HOST_DEAD_AFTER (5s)
		for i := range agents {
			if st := hostStatus(b, i); st != "online" {
				t.Errorf("host %d is %s %v after replica a's kill", i, st, time.Since(killedAt))
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("replica b served %d rounds of create, exec, exec stream and destroy while a died", served)
	if len(failures) > 0 || served < 3 {
		t.Fatalf("replica b failed %d of %d rounds while a died: %v", len(failures), served, failures)
	}

	// Host 2's agent is killed: its host is unreachable within 10 s, its
	// running sandboxes read missing, and creates go elsewhere.
	var onLost []sandbox
	for range 2 {
		onLost = append(onLost, create(b, body(tagOf(2))))
	}
	agents[2].proc.kill()
	took := waitHost(b, 2, "unreachable", 10*time.Second)
	t.Logf("host 2 unreachable %v after its agent's kill -9", took)
	for _, sb := range onLost {
		var got sandbox
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			b.must(200, "GET", "/v1/sandboxes/"+sb.ID, key, nil, &got)
			if got.Status == "missing" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sandbox %s on the lost host is %s, want missing", sb.ID, got.Status)
			}
		}
	}
	for range 4 {
		sb := create(b, body())
		if hostOf(sb) == 2 {
			t.Fatal("a create landed on the unreachable host")
		}
		echo(b, sb)
		b.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	}

	// Host 0's delete-preview lists exactly the sandboxes on it: those a
	// forced delete then destroys, ending their VMs; the others live on.
	var kept []sandbox
	for range 4 {
		kept = append(kept, create(b, body()))
	}
	var onHost0 []string
	for _, sb := range kept {
		if hostOf(sb) == 0 {
			onHost0 = append(onHost0, sb.ID)
		}
	}
	if len(onHost0) == 0 {
		sb := create(b, body(tagOf(0)))
		kept, onHost0 = append(kept, sb), []string{sb.ID}
	}
	var preview struct {
		SandboxIDs []string `json:"sandbox_ids"`
	}
	b.must(200, "GET", "/v1/hosts/"+agents[0].hostID+"/delete-preview", jwt, nil, &preview)
	if !slices.Equal(sorted(preview.SandboxIDs), sorted(onHost0)) {
		t.Fatalf("host 0's delete-preview lists %v; the sandboxes on it are %v", preview.SandboxIDs, onHost0)
	}
	b.must(204, "DELETE", "/v1/hosts/"+agents[0].hostID+"?force=true", jwt, nil, nil)
	for _, sb := range kept {
		var got sandbox
		code, out := b.do("GET", "/v1/sandboxes/"+sb.ID, key, nil)
		if code == 200 {
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
		}
		destroyed := code == 404 || got.Status == "stopped"
		if want := slices.Contains(onHost0, sb.ID); destroyed != want {
			t.Fatalf("after host 0's forced delete, sandbox %s (on host %d) = %d %s", sb.ID, hostOf(sb), code, out)
		}
		if !destroyed {
			echo(b, sb)
			b.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); len(snapshotHost(t, agents[0].dataDir).qemus) != 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("host 0 still runs VMs after its forced delete: %v", snapshotHost(t, agents[0].dataDir).qemus)
		}
	}
}
