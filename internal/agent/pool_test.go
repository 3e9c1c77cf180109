package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/layout"
)

// fakeMembers makes no members and records the ones ended.
type fakeMembers struct {
	mu    sync.Mutex
	ended []*sandbox
}

func (f *fakeMembers) makeMember(context.Context, poolKey) (*poolMember, error) {
	return nil, errors.New("no members here")
}

func (f *fakeMembers) endMember(sb *sandbox) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = append(f.ended, sb)
}

func (f *fakeMembers) isEnded(sb *sandbox) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.ended {
		if e == sb {
			return true
		}
	}
	return false
}

func testPool(t *testing.T) (*pool, *fakeMembers) {
	t.Helper()
	host := &fakeMembers{}
	p := newPool(PoolConfig{Floor: 1}, discardLog(), host, nil)
	t.Cleanup(p.close)
	return p, host
}

// addMember puts a member of key in the pool with a run directory of its
// own under dir, ready since readyAt.
func addMember(t *testing.T, p *pool, dir string, key poolKey, readyAt time.Time) *poolMember {
	t.Helper()
	id := fmt.Sprintf("pool-%d", readyAt.UnixNano())
	sb := newSandbox(id, layout.SandboxDir(filepath.Join(dir, id)), discardLog(), lcPooled)
	if err := os.MkdirAll(sb.dir.Path(), 0o700); err != nil {
		t.Fatal(err)
	}
	member := &poolMember{sb: sb, readyAt: readyAt}
	p.mu.Lock()
	p.ready[key] = append(p.ready[key], member)
	p.mu.Unlock()
	return member
}

func TestPoolMakeRoom(t *testing.T) {
	p, host := testPool(t)
	dir := t.TempDir()
	now := time.Now()
	addMember(t, p, dir, poolKey{name: "minimal"}, now.Add(-time.Hour)) // a base's: never counted
	var members []*poolMember
	for i := range maxTemplateMembers {
		key := poolKey{team: "team-a", name: fmt.Sprint("t", i)}
		members = append(members, addMember(t, p, dir, key, now.Add(time.Duration(i)*time.Second)))
	}
	p.mu.Lock()
	ok := p.makeRoomLocked()
	_, kept := p.ready[poolKey{team: "team-a", name: "t0"}]
	p.mu.Unlock()
	if !ok || kept {
		t.Fatalf("at the bound: room %v, the oldest member's template still in the pool: %v", ok, kept)
	}
	// The oldest is ended.
	deadline := time.Now().Add(5 * time.Second)
	for !host.isEnded(members[0].sb) {
		if time.Now().After(deadline) {
			t.Fatal("the member that made room was not ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if host.isEnded(members[1].sb) {
		t.Error("a younger member was ended")
	}

	// Below the bound there is room; with every slot starting, none.
	p.mu.Lock()
	if !p.makeRoomLocked() {
		t.Error("no room below the bound")
	}
	for key := range p.ready {
		if key.team != "" {
			delete(p.ready, key)
		}
	}
	p.filling[poolKey{team: "team-b", name: "x"}] = maxTemplateMembers
	if p.makeRoomLocked() {
		t.Error("room while every member is still starting")
	}
	delete(p.filling, poolKey{team: "team-b", name: "x"})
	p.mu.Unlock()
}

func TestPoolTakeSkipsReplacedTemplate(t *testing.T) {
	p, host := testPool(t)
	tmpl := layout.TemplateDir(filepath.Join(t.TempDir(), "tmpl"))
	if err := os.MkdirAll(tmpl.Path(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmpl.Memory(), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := poolKey{team: "team-a", name: "tmpl"}
	member := addMember(t, p, t.TempDir(), key, time.Now())
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
	if got := p.take(key, tmpl); got != nil {
		t.Fatal("handed out a member of a replaced template")
	}
	p.wg.Wait()
	if !host.isEnded(member.sb) {
		t.Error("the member of the replaced template was not ended")
	}
}

func TestPoolDropAndClose(t *testing.T) {
	p, host := testPool(t)
	dir := t.TempDir()
	a := addMember(t, p, dir, poolKey{team: "team-a", name: "a"}, time.Now())
	b := addMember(t, p, dir, poolKey{team: "team-a", name: "b"}, time.Now().Add(time.Second))
	p.drop(poolKey{team: "team-a", name: "a"})
	if !host.isEnded(a.sb) || host.isEnded(b.sb) {
		t.Fatal("drop ended the wrong members")
	}
	p.close()
	if !host.isEnded(b.sb) {
		t.Error("close left a member")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ready) != 0 || len(p.filling) != 0 || len(p.gen) != 0 {
		t.Errorf("the pool's maps kept %d, %d, %d entries", len(p.ready), len(p.filling), len(p.gen))
	}
}
