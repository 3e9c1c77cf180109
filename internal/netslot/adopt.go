package netslot

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"
)

// Adopt re-attaches to slot index after a host-agent restart: the namespace,
// TAP, veth and rules a previous process built are checked, not rebuilt, and
// the slot is held as if Acquire had returned it.
func (m *Manager) Adopt(ctx context.Context, index int) (*Slot, error) {
	if index < 0 || index >= m.l.maxSlots {
		return nil, fmt.Errorf("adopt slot %d: index out of range [0, %d)", index, m.l.maxSlots)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("adopt slot %d: %w", index, err)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, fmt.Errorf("adopt slot %d: %w", index, ErrClosed)
	}
	prev := m.state[index]
	if prev != stateFree && prev != stateForeign {
		m.mu.Unlock()
		return nil, fmt.Errorf("adopt slot %d: %w", index, ErrBusy)
	}
	m.state[index] = stateBuilding
	m.mu.Unlock()

	s := m.l.slot(index)
	err := checkSlot(s)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.state[index] = prev
		return nil, fmt.Errorf("adopt slot %d: %w", index, err)
	}
	m.state[index] = stateHeld
	m.held[index] = s
	return s, nil
}

// checkSlot verifies that everything slot s is made of is in place.
func checkSlot(s *Slot) error {
	if err := isNamespace(s.path); err != nil {
		return fmt.Errorf("namespace %s: %w", s.Namespace, err)
	}
	if err := hasAddr(s.HostVeth, s.HostVethIP.AsSlice()); err != nil {
		return err
	}
	err := s.Do(func() error {
		if _, err := netlink.LinkByName(s.TapName); err != nil {
			return fmt.Errorf("%s: %w", s.TapName, err)
		}
		return hasAddr(nsVeth, s.HostIP.AsSlice())
	})
	if err != nil {
		return fmt.Errorf("in namespace %s: %w", s.Namespace, err)
	}
	return hasNamespaceFirewall(s)
}

// hasAddr checks that link exists (in the calling thread's namespace) and
// carries address ip.
func hasAddr(link string, ip []byte) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return fmt.Errorf("%s: %w", link, err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("%s addresses: %w", link, err)
	}
	for _, a := range addrs {
		if a.IP.Equal(ip) {
			return nil
		}
	}
	return fmt.Errorf("%s lacks its address", link)
}

// Sweep removes what an earlier process left on the host under this
// Config's names: every namespace and host veth whose index is neither held,
// ready or being built here nor listed in inUse (the indexes of sandboxes the
// agent found alive, adopted or about to be). Indexes in inUse are left
// alone and kept out of the pool. It also finishes teardowns that failed.
// The host agent calls it at start, after adopting its live sandboxes.
func (m *Manager) Sweep(ctx context.Context, inUse []int) error {
	found, err := scanHost(m.l)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	keep := map[int]bool{}
	for _, i := range inUse {
		keep[i] = true
	}
	var victims []int
	m.mu.Lock()
	for i, st := range m.state {
		switch {
		case st != stateFree && st != stateForeign && st != stateBroken:
			continue // ours
		case keep[i]:
			if found[i] && st == stateFree {
				m.state[i] = stateForeign
			}
		case found[i] || st == stateBroken:
			m.state[i] = stateTearingDown
			victims = append(victims, i)
		case st == stateForeign: // gone by itself
			m.state[i] = stateFree
		}
	}
	m.mu.Unlock()

	slices.Sort(victims)
	var errs []error
	for n, i := range victims {
		if err := ctx.Err(); err != nil {
			m.mu.Lock()
			for _, j := range victims[n:] {
				m.state[j] = stateBroken
			}
			m.mu.Unlock()
			return errors.Join(append(errs, fmt.Errorf("sweep: %w", err))...)
		}
		s := m.l.slot(i)
		err := teardown(s)
		m.settleTeardown(i, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep slot %d: %w", i, err))
			continue
		}
		m.log.Info("removed leftover network slot", logSlot, i, logNetns, s.Namespace)
	}
	m.kickFill()
	return errors.Join(errs...)
}
