package netslot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// Errors callers may test for with errors.Is.
var (
	ErrExhausted = errors.New("netslot: no free slot index")
	ErrClosed    = errors.New("netslot: manager closed")
	ErrNotHeld   = errors.New("netslot: slot is not held from this manager")
	ErrBusy      = errors.New("netslot: slot index already in use")
)

// Log attribute keys.
const (
	logSlot     = "slot"
	logNetns    = "netns"
	logErr      = "err"
	logName     = "netslot"
	logCIDR     = "cidr"
	logMaxSlots = "max_slots"
	logPoolSize = "pool_size"
	logFound    = "left_by_earlier_run"
	logSysctl   = "sysctl"
	logWas      = "was"
	logRetryIn  = "retry_in"
)

// slotState is where one slot index stands.
type slotState uint8

const (
	stateFree     slotState = iota
	stateBuilding           // being built, or checked by Adopt
	stateReady              // built and waiting in the pool
	stateHeld               // handed out by Acquire or Adopt
	stateForeign            // on the host but not ours (yet): Adopt or Sweep decides
	stateTearingDown
	stateBroken // teardown failed part-way; Sweep tries again
)

// Manager hands out network slots and keeps a pool of ready ones. It is safe
// for concurrent use. No lock is held across a system call: building and
// tearing down run unlocked, on indexes the state table has reserved.
type Manager struct {
	log *slog.Logger
	l   scheme

	kick     chan struct{} // wakes the pool filler
	stopFill context.CancelFunc
	fillDone chan struct{}

	mu           sync.Mutex
	closed       bool
	state        []slotState // by index
	ready        []*Slot     // the pool, oldest first
	held         map[int]*Slot
	poolBuilding int
	// poolBuilt is closed (and replaced) when a pool build settles, for
	// an Acquire that found every free index being built for the pool.
	poolBuilt chan struct{}
}

// NewManager checks the host, enables forwarding, installs the host table
// (replacing an older copy atomically, so live slots of a previous run stay
// isolated throughout), notes slots left on the host by an earlier process
// so it never builds over them, and starts filling the pool.
func NewManager(ctx context.Context, c Config) (*Manager, error) {
	l, err := c.scheme()
	if err != nil {
		return nil, fmt.Errorf("netslot config: %w", err)
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(logName, l.name)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ensureNetnsDir(netnsDir); err != nil {
		return nil, fmt.Errorf("prepare %s: %w", netnsDir, err)
	}
	if err := checkHost(l); err != nil {
		return nil, fmt.Errorf("check host: %w", err)
	}
	if err := enableForwarding(log); err != nil {
		return nil, fmt.Errorf("enable forwarding: %w", err)
	}
	if err := installHostFirewall(l); err != nil {
		return nil, err
	}
	found, err := scanHost(l)
	if err != nil {
		return nil, fmt.Errorf("scan host: %w", err)
	}
	m := &Manager{
		log:      log,
		l:        l,
		kick:     make(chan struct{}, 1),
		fillDone: make(chan struct{}),
		state:    make([]slotState, l.maxSlots),
		held:     map[int]*Slot{},
	}
	for i := range found {
		m.state[i] = stateForeign
	}
	fillCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopFill = cancel
	go m.fill(fillCtx)
	log.Info("network slots ready", logCIDR, l.cidr.String(), logMaxSlots, l.maxSlots,
		logPoolSize, l.poolSize, logFound, len(found))
	return m, nil
}

// Acquire hands out a ready slot, or builds one inline when the pool is
// empty. It waits for the pool only when the pool is building on the last
// free indexes; otherwise it returns as soon as it has a slot or an error
// (ErrExhausted when every index is taken).
func (m *Manager) Acquire(ctx context.Context) (*Slot, error) {
	for attempt := 0; ; {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("acquire slot: %w", err)
		}
		s, i, built, err := m.takeReady()
		if built != nil {
			// Take one of those rather than report the host full.
			select {
			case <-built:
			case <-ctx.Done():
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("acquire slot: %w", err)
		}
		if s != nil {
			m.kickFill()
			return s, nil
		}
		s, err = m.l.build(ctx, i)
		m.settleBuild(i, s, err, stateHeld, false)
		if err == nil {
			m.kickFill()
			return s, nil
		}
		if attempt++; !errors.Is(err, errExists) || attempt == 4 {
			return nil, fmt.Errorf("acquire slot: %w", err)
		}
		m.log.Warn("slot index held by leftovers, trying another; Sweep removes them", logSlot, i, logErr, err)
	}
}

// takeReady pops a pool slot, or else reserves a free index to build on,
// or else, if pool slots are being built, returns a channel closed when
// one is.
func (m *Manager) takeReady() (*Slot, int, <-chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, 0, nil, ErrClosed
	}
	if len(m.ready) > 0 {
		s := m.ready[0]
		m.ready = m.ready[1:]
		m.state[s.Index] = stateHeld
		m.held[s.Index] = s
		return s, 0, nil, nil
	}
	i, ok := m.allocLocked()
	if ok {
		return nil, i, nil, nil
	}
	if m.poolBuilding > 0 {
		if m.poolBuilt == nil {
			m.poolBuilt = make(chan struct{})
		}
		return nil, 0, m.poolBuilt, nil
	}
	return nil, 0, nil, ErrExhausted
}

// allocLocked reserves the lowest free index.
func (m *Manager) allocLocked() (int, bool) {
	for i, st := range m.state {
		if st == stateFree {
			m.state[i] = stateBuilding
			return i, true
		}
	}
	return 0, false
}

// settleBuild records how building index i ended: the slot goes to state to
// (held or ready), or the index is freed (foreign if leftovers hold it).
func (m *Manager) settleBuild(i int, s *Slot, err error, to slotState, pool bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pool {
		m.poolBuilding--
		if m.poolBuilt != nil {
			close(m.poolBuilt)
			m.poolBuilt = nil
		}
	}
	switch {
	case err == nil && to == stateReady:
		m.state[i] = stateReady
		m.ready = append(m.ready, s)
	case err == nil:
		m.state[i] = stateHeld
		m.held[i] = s
	case errors.Is(err, errExists):
		m.state[i] = stateForeign
	default:
		m.state[i] = stateFree
	}
}

// Release tears slot s down completely: nothing of its sandbox (addresses in
// use, conntrack entries, neighbour caches, rules) survives into the next
// slot built on its index. Call it after QEMU has closed the TAP. If teardown
// fails part-way the index is kept out of use until Sweep finishes the job.
func (m *Manager) Release(ctx context.Context, s *Slot) error {
	if s == nil {
		return fmt.Errorf("release slot: %w", ErrNotHeld)
	}
	m.mu.Lock()
	if m.held[s.Index] != s {
		m.mu.Unlock()
		return fmt.Errorf("release slot %d: %w", s.Index, ErrNotHeld)
	}
	delete(m.held, s.Index)
	m.state[s.Index] = stateTearingDown
	m.mu.Unlock()

	stopResolver(s)
	err := teardown(s)
	m.settleTeardown(s.Index, err)
	m.kickFill()
	if err != nil {
		return fmt.Errorf("release slot %d: %w", s.Index, err)
	}
	return nil
}

func (m *Manager) settleTeardown(i int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.state[i] = stateBroken
	} else {
		m.state[i] = stateFree
	}
}

// Close stops the pool filler and removes the ready slots nobody holds.
// Held slots are left to their owners (a restarted agent adopts them); the
// host table stays, so they stay isolated. Close is idempotent.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.stopFill()
	select {
	case <-m.fillDone:
	case <-ctx.Done():
		return fmt.Errorf("close: wait for pool filler: %w", ctx.Err())
	}
	m.mu.Lock()
	ready := m.ready
	m.ready = nil
	for _, s := range ready {
		m.state[s.Index] = stateTearingDown
	}
	m.mu.Unlock()
	return m.teardownAll(ready)
}

// RemoveAll is Close for tests and uninstalling: it also tears down held
// slots and every leftover of this Config's names on the host, and deletes
// the host table.
func (m *Manager) RemoveAll(ctx context.Context) error {
	errs := []error{m.Close(ctx)}
	m.mu.Lock()
	var held []*Slot
	for i, s := range m.held {
		held = append(held, s)
		m.state[i] = stateTearingDown
		delete(m.held, i)
	}
	m.mu.Unlock()
	errs = append(errs, m.teardownAll(held), m.Sweep(ctx, nil))
	errs = append(errs, removeHostFirewall(m.l.name))
	return errors.Join(errs...)
}

func (m *Manager) teardownAll(slots []*Slot) error {
	var errs []error
	for _, s := range slots {
		err := teardown(s)
		m.settleTeardown(s.Index, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("slot %d: %w", s.Index, err))
		}
	}
	return errors.Join(errs...)
}

// Stats counts slots by state.
type Stats struct {
	Ready    int // built, waiting in the pool
	Held     int // handed out
	Building int
	Foreign  int // found on the host, neither adopted nor swept yet
	Broken   int // teardown failed; Sweep retries
}

// Stats reports how many slots are in each state.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	var st Stats
	for _, s := range m.state {
		switch s {
		case stateReady:
			st.Ready++
		case stateHeld:
			st.Held++
		case stateBuilding:
			st.Building++
		case stateForeign:
			st.Foreign++
		case stateBroken:
			st.Broken++
		}
	}
	return st
}
