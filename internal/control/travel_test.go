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

// storeFleet is a fakeFleet whose hosts may share stores (control.Stores).
type storeFleet struct {
	fakeFleet
	hostStore map[string]string
	templates map[string]string // store of team/name
}

func (f *storeFleet) HostStore(_ context.Context, id string) (string, error) {
	return f.hostStore[id], nil
}

func (f *storeFleet) PlaceInStore(_ context.Context, store, _ string, _ []string, _, _ int, exclude []string) (string, error) {
	for _, id := range f.order {
		if f.hostStore[id] == store && !slices.Contains(exclude, id) {
			return id, nil
		}
	}
	return "", wrenn.Errorf(wrenn.EHostFull, "no host of the shared store %s is available", store)
}

func (f *storeFleet) TemplateStore(_ context.Context, team, name string) (string, error) {
	return f.templates[team+"/"+name], nil
}

func (f *storeFleet) SetTemplateStore(_ context.Context, team, name, store string) error {
	f.templates[team+"/"+name] = store
	return nil
}

// travelAgent is a mock agent that notes its calls; full refuses resumes.
func travelAgent(calls *[]string, mu *sync.Mutex, host string, full bool) *mock.Agent {
	a := hostAgent(calls, mu, host, false)
	note := func(what string) {
		mu.Lock()
		defer mu.Unlock()
		*calls = append(*calls, host+" "+what)
	}
	a.PauseSandboxFn = func(context.Context, string) error { note("pause"); return nil }
	a.ResumeSandboxFn = func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
		note("resume")
		if full {
			return wrenn.SandboxNet{}, wrenn.Errorf(wrenn.EHostFull, "host is full: memory")
		}
		return wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "10.0.0.2"}, nil
	}
	a.CreateSnapshotFn = func(context.Context, string, *wrenn.Template) error { note("snapshot"); return nil }
	a.DeleteSnapshotFn = func(context.Context, string, string) error { note("delete snapshot"); return nil }
	return a
}

// TestSharedStoreRouting: a paused sandbox of a host with a shared store
// resumes on a host of that store that placement chooses (the next when
// one is full), also when its own host is unreachable, and its record then
// names that host; a template made in a store starts sandboxes on the
// store's hosts and is deleted by one of them; a paused sandbox of a lost
// host is destroyed through another host of its store. A host without a
// store keeps its paused sandboxes.
func TestSharedStoreRouting(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			var mu sync.Mutex
			var calls []string
			f := &storeFleet{
				fakeFleet: fakeFleet{order: []string{"host-a"}, agents: map[string]wrenn.Agent{
					"host-a": travelAgent(&calls, &mu, "host-a", false),
					"host-b": travelAgent(&calls, &mu, "host-b", true),
					"host-c": travelAgent(&calls, &mu, "host-c", false),
					"host-d": travelAgent(&calls, &mu, "host-d", false),
				}},
				hostStore: map[string]string{"host-a": "store-s", "host-b": "store-s", "host-c": "store-s"},
				templates: map[string]string{},
			}
			svc, db := mustService(t, engine, travelAgent(&calls, &mu, "host-1", false), func(c *control.Config) { c.Fleet = f })
			sb, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
			if err != nil || sb.HostID != "host-a" {
				t.Fatalf("create: %+v, %v", sb, err)
			}
			if _, err := svc.PauseSandbox(ctx, "team-a", sb.ID); err != nil {
				t.Fatal(err)
			}
			// Host a is lost; b is full; c takes it.
			delete(f.agents, "host-a")
			f.order = []string{"host-a", "host-d", "host-b", "host-c"}
			calls = nil
			got, err := svc.ResumeSandbox(ctx, "team-a", sb.ID)
			if err != nil || got.HostID != "host-c" || got.Status != wrenn.StatusRunning {
				t.Fatalf("resume: %+v, %v", got, err)
			}
			if rec, err := db.GetSandbox(ctx, "team-a", sb.ID); err != nil || rec.HostID != "host-c" {
				t.Fatalf("record after the resume: %+v, %v", rec, err)
			}
			if want := []string{"host-b resume", "host-c resume"}; !slices.Equal(calls, want) {
				t.Fatalf("agent calls %q, want %q", calls, want)
			}

			// A template made on host c is the store's: creates from it go
			// to hosts of the store only; its delete to one of them.
			f.order = []string{"host-c"}
			calls = nil
			tmpl, err := svc.CreateSnapshot(ctx, "team-a", control.SnapshotParams{SandboxID: sb.ID, Name: "snap"})
			if err != nil {
				t.Fatal(err)
			}
			if f.templates["team-a/snap"] != "store-s" {
				t.Fatalf("template stores: %v", f.templates)
			}
			f.order = []string{"host-d", "host-1", "host-b"}
			f.agents["host-b"] = travelAgent(&calls, &mu, "host-b", false)
			fromTmpl, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: tmpl.Name})
			if err != nil || fromTmpl.HostID != "host-b" {
				t.Fatalf("create from the store's template: %+v, %v", fromTmpl, err)
			}
			if err := svc.DeleteSnapshot(ctx, "team-a", "snap"); err != nil {
				t.Fatal(err)
			}
			if want := []string{"host-c snapshot", "host-b create", "host-b delete snapshot"}; !slices.Equal(calls, want) {
				t.Fatalf("agent calls %q, want %q", calls, want)
			}

			// A paused sandbox of a lost host is destroyed through another
			// host of its store.
			if _, err := svc.PauseSandbox(ctx, "team-a", fromTmpl.ID); err != nil {
				t.Fatal(err)
			}
			delete(f.agents, "host-b")
			f.order = []string{"host-b", "host-c"}
			calls = nil
			if err := svc.DestroySandbox(ctx, "team-a", fromTmpl.ID); err != nil {
				t.Fatal(err)
			}
			if want := []string{"host-c destroy"}; !slices.Equal(calls, want) {
				t.Fatalf("agent calls %q, want %q", calls, want)
			}

			// A host without a store: the resume goes back to it, and
			// waits for it.
			f.order = []string{"host-d"}
			sb, err = svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.PauseSandbox(ctx, "team-a", sb.ID); err != nil {
				t.Fatal(err)
			}
			delete(f.agents, "host-d")
			if _, err := svc.ResumeSandbox(ctx, "team-a", sb.ID); wrenn.ErrorCode(err) != wrenn.EHostAgent {
				t.Fatalf("resume on a lost host without a store: %v", err)
			}
			if rec, _ := db.GetSandbox(ctx, "team-a", sb.ID); rec.Status != wrenn.StatusPaused || rec.HostID != "host-d" {
				t.Fatalf("after a failed resume: %+v", rec)
			}
		})
	}
}
