package agent

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/layout"
)

// poolManager is a Manager whose pool holds members that run nothing:
// enough for the pool's bookkeeping.
func poolManager(t *testing.T) *Manager {
	t.Helper()
	m := New(Config{Layout: layout.New(t.TempDir()), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PoolSize: 1})
	t.Cleanup(m.pool.cancel)
	return m
}

// addMember puts a member of key in the pool with a run directory of its
// own, ready since readyAt.
func addMember(t *testing.T, m *Manager, key poolKey, readyAt time.Time) *poolMember {
	t.Helper()
	id := fmt.Sprintf("pool-%d", readyAt.UnixNano())
	sb := &sandbox{id: id, dir: m.cfg.Layout.Sandbox(id), log: m.log}
	if err := os.MkdirAll(sb.dir.Path(), 0o700); err != nil {
		t.Fatal(err)
	}
	member := &poolMember{sb: sb, readyAt: readyAt, expiry: time.NewTimer(time.Hour)}
	m.mu.Lock()
	m.pool.ready[key] = append(m.pool.ready[key], member)
	m.mu.Unlock()
	return member
}

func TestPoolMakeRoom(t *testing.T) {
	m := poolManager(t)
	now := time.Now()
	addMember(t, m, poolKey{name: "minimal"}, now.Add(-time.Hour)) // a base's: never counted
	var members []*poolMember
	for i := range maxTemplateMembers {
		key := poolKey{team: "team-a", name: fmt.Sprint("t", i)}
		members = append(members, addMember(t, m, key, now.Add(time.Duration(i)*time.Second)))
	}
	m.mu.Lock()
	ok := m.makeRoomLocked()
	_, kept := m.pool.ready[poolKey{team: "team-a", name: "t0"}]
	m.mu.Unlock()
	if !ok || kept {
		t.Fatalf("at the bound: room %v, the oldest member's template still in the pool: %v", ok, kept)
	}
	// The oldest is ended: its run directory goes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(members[0].sb.dir.Path()); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the member that made room was not ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(members[1].sb.dir.Path()); err != nil {
		t.Errorf("a younger member was ended: %v", err)
	}

	// Below the bound there is room; with every slot starting, none.
	m.mu.Lock()
	if !m.makeRoomLocked() {
		t.Error("no room below the bound")
	}
	for key := range m.pool.ready {
		if key.team != "" {
			delete(m.pool.ready, key)
		}
	}
	m.pool.filling[poolKey{team: "team-b", name: "x"}] = maxTemplateMembers
	if m.makeRoomLocked() {
		t.Error("room while every member is still starting")
	}
	m.mu.Unlock()
}

func TestPoolClaimSkipsReplacedTemplate(t *testing.T) {
	m := poolManager(t)
	tmpl := layout.TemplateDir(filepath.Join(t.TempDir(), "tmpl"))
	if err := os.MkdirAll(tmpl.Path(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmpl.Memory(), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := poolKey{team: "team-a", name: "tmpl"}
	member := addMember(t, m, key, time.Now())
	member.tmpl = tmpl
	if err := os.Link(tmpl.Memory(), member.sb.dir.TemplateMemory()); err != nil {
		t.Fatal(err)
	}
	if !sameTemplate(member, tmpl) {
		t.Fatal("a member of the template as it is is not taken for one")
	}
	// Replaced: a new file under the same name.
	os.Remove(tmpl.Memory())
	if err := os.WriteFile(tmpl.Memory(), []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if sameTemplate(member, tmpl) {
		t.Fatal("a member of a replaced template is taken for one of the new")
	}
	sb := &sandbox{id: "sb-x", dir: m.cfg.Layout.Sandbox("sb-x"), log: m.log}
	st := &state{ID: "sb-x"}
	if _, ok := m.claim(t.Context(), sb, st, key, tmpl); ok {
		t.Fatal("claimed a member of a replaced template")
	}
}
