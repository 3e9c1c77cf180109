package control_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/mock"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// fakeFleet places on the first of order not excluded and reaches the
// agents of agents; a host not there is unreachable.
type fakeFleet struct {
	order  []string
	agents map[string]wrenn.Agent
}

func (f *fakeFleet) Agent(_ context.Context, id string) (wrenn.Agent, error) {
	if a, ok := f.agents[id]; ok {
		return a, nil
	}
	return nil, wrenn.Errorf(wrenn.EHostAgent, "the sandbox's host %s is unreachable", id)
}

func (f *fakeFleet) Place(_ context.Context, _ string, tags []string, _, _ int, exclude []string) (string, error) {
	for _, id := range f.order {
		if !slices.Contains(exclude, id) {
			return id, nil
		}
	}
	return "", wrenn.Errorf(wrenn.EHostFull, "the fleet is full")
}

// hostAgent is a mock agent that notes the calls it gets.
func hostAgent(calls *[]string, mu *sync.Mutex, host string, full bool) *mock.Agent {
	note := func(what string) {
		mu.Lock()
		defer mu.Unlock()
		*calls = append(*calls, host+" "+what)
	}
	return &mock.Agent{
		CreateSandboxFn: func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
			note("create")
			if full {
				return wrenn.SandboxNet{}, wrenn.Errorf(wrenn.EHostFull, "host is full: memory")
			}
			return wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "10.0.0.1"}, nil
		},
		ExecFn: func(context.Context, string, wrenn.ExecRequest) (*wrenn.ExecResult, error) {
			note("exec")
			return &wrenn.ExecResult{}, nil
		},
		DestroySandboxFn: func(context.Context, string) error { note("destroy"); return nil },
	}
}

// TestFleetRouting: with a fleet, a create goes where placement says (to
// the next host when an agent finds itself full), every later call to the
// agent of the sandbox's recorded host, and a host that cannot be reached
// is an error at once; without one, a create asking for host tags finds no
// host.
func TestFleetRouting(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			var mu sync.Mutex
			var calls []string
			f := &fakeFleet{order: []string{"host-2", "host-3"}, agents: map[string]wrenn.Agent{
				"host-2": hostAgent(&calls, &mu, "host-2", true),
				"host-3": hostAgent(&calls, &mu, "host-3", false),
			}}
			svc, db := mustService(t, engine, hostAgent(&calls, &mu, "host-1", false), func(c *control.Config) { c.Fleet = f })
			sb, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
			if err != nil {
				t.Fatal(err)
			}
			if rec, err := db.GetSandbox(ctx, "team-a", sb.ID); err != nil || rec.HostID != "host-3" || sb.HostID != "host-3" {
				t.Fatalf("sandbox on %q (record %+v, %v), want host-3", sb.HostID, rec, err)
			}
			if _, err := svc.Exec(ctx, "team-a", sb.ID, control.ExecParams{Cmd: "true"}); err != nil {
				t.Fatal(err)
			}
			if err := svc.DestroySandbox(ctx, "team-a", sb.ID); err != nil {
				t.Fatal(err)
			}
			want := []string{"host-2 create", "host-3 create", "host-3 exec", "host-3 destroy"}
			if !slices.Equal(calls, want) {
				t.Fatalf("agent calls %q, want %q", calls, want)
			}

			// The server's own agent is one host of the fleet.
			f.order = []string{"host-1"}
			calls = nil
			sb, err = svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
			if err != nil || sb.HostID != "host-1" {
				t.Fatalf("create on the own host: %+v, %v", sb, err)
			}
			if _, err := svc.Exec(ctx, "team-a", sb.ID, control.ExecParams{Cmd: "true"}); err != nil {
				t.Fatal(err)
			}
			if want := []string{"host-1 create", "host-1 exec"}; !slices.Equal(calls, want) {
				t.Fatalf("agent calls %q, want %q", calls, want)
			}

			// A host gone unreachable: its sandboxes' calls fail at once.
			f.order = []string{"host-3"}
			sb, err = svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
			if err != nil {
				t.Fatal(err)
			}
			delete(f.agents, "host-3")
			_, err = svc.Exec(ctx, "team-a", sb.ID, control.ExecParams{Cmd: "true"})
			if wrenn.ErrorCode(err) != wrenn.EHostAgent || wrenn.ErrorMessage(err) != "the sandbox's host host-3 is unreachable" {
				t.Fatalf("exec on an unreachable host: %v", err)
			}
			// Every host full: the fleet's 503, and no record left behind.
			f.order = []string{"host-2"}
			before, _ := db.ListSandboxes(ctx, "team-a")
			if _, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"}); wrenn.ErrorCode(err) != wrenn.EHostFull {
				t.Fatalf("create on a full fleet: %v", err)
			}
			if after, _ := db.ListSandboxes(ctx, "team-a"); len(after) != len(before) {
				t.Fatalf("a refused create left a record: %d records, had %d", len(after), len(before))
			}
		})
	}
}

// TestHostTagsOneAgent: one agent is one untagged host.
func TestHostTagsOneAgent(t *testing.T) {
	svc, _ := mustService(t, "sqlite", &mock.Agent{})
	_, err := svc.CreateSandbox(context.Background(), "team-a", control.CreateParams{Template: "minimal", HostTags: []string{"gpu"}})
	if wrenn.ErrorCode(err) != wrenn.EHostFull {
		t.Fatalf("a tagged create with one agent: %v", err)
	}
	_, err = svc.CreateSandbox(context.Background(), "team-a", control.CreateParams{Template: "minimal", HostTags: []string{""}})
	if wrenn.ErrorCode(err) != wrenn.EInvalid {
		t.Fatalf("an empty host tag: %v", err)
	}
}
