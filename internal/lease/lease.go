// Package lease runs each background job of the control plane on one
// replica at a time (issue 13, control planes that can fail). Several
// `wrenn server` replicas share one PostgreSQL database; a job (a host's
// reconciler, the heartbeat check, the stats recorder) runs on the
// replica that holds its lease, a row of the store's leases table with a
// holder and an expiry by the database's clock. The holder renews it
// every TTL/3; a replica that dies (kill -9) stops renewing, and within
// TTL plus TTL/3 of its last renewal another replica takes the lease and
// starts the job. A holder that cannot renew for 2/3 of TTL (its database
// unreachable) stops the job first, before the lease can expire under
// it. There is no consensus here: PostgreSQL decides, one row at a time.
// On SQLite, one process, a lease is always taken (store.AcquireLease).
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strconv"
	"time"
)

// DefaultTTL is how long a lease lasts unless renewed: a job whose
// replica died is taken over within DefaultTTL*4/3.
const DefaultTTL = 6 * time.Second

// Store keeps the leases (internal/store).
type Store interface {
	// AcquireLease takes the lease name for holder until ttl from now, or
	// renews it if holder has it; it reports whether holder has it now.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives up the lease if holder has it.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Config wires Leases.
type Config struct {
	Store Store
	// Holder names this replica; "" makes one of the host name, the
	// process ID and random bytes.
	Holder string
	// TTL is how long a lease lasts unless renewed; 0 means DefaultTTL.
	TTL    time.Duration
	Logger *slog.Logger
}

// Leases runs jobs under leases, as one holder.
type Leases struct {
	c Config
}

// New returns Leases.
func New(c Config) *Leases {
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.Holder == "" {
		c.Holder = NewHolder()
	}
	return &Leases{c: c}
}

// NewHolder returns a name for this process as a holder: its host name,
// its process ID and random bytes, so that a restarted process is another
// holder.
func NewHolder() string {
	h, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return h + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(b)
}

// Holder is this replica's name as a holder.
func (l *Leases) Holder() string { return l.c.Holder }

// TTL is how long a lease lasts unless renewed.
func (l *Leases) TTL() time.Duration { return l.c.TTL }

// Run runs job(ctx) while this replica holds the lease name, until ctx
// ends: it tries to take the lease every TTL/3, runs job once it has it,
// renews it every TTL/3, and ends job's context (and waits for job to
// return) when the lease is lost, to try again. When ctx ends it releases
// the lease, so that another replica takes over at once. If job returns
// by itself, the lease is released and Run returns.
func (l *Leases) Run(ctx context.Context, name string, job func(ctx context.Context)) {
	every := l.c.TTL / 3
	log := l.c.Logger.With(slog.String("lease", name), slog.String("holder", l.c.Holder))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		start := time.Now()
		if l.acquire(ctx, name, log) {
			log.Info("lease acquired: running the job here")
			if l.hold(ctx, name, start, t, job, log) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// acquire tries once to take or renew the lease.
func (l *Leases) acquire(ctx context.Context, name string, log *slog.Logger) bool {
	actx, cancel := context.WithTimeout(ctx, l.c.TTL/3)
	defer cancel()
	ok, err := l.c.Store.AcquireLease(actx, name, l.c.Holder, l.c.TTL)
	if err != nil && ctx.Err() == nil {
		log.Warn("lease", slog.Any("error", err))
	}
	return err == nil && ok
}

// hold runs job while the lease, taken at renewed, is renewed; it reports
// whether Run is over (ctx ended, or job returned).
func (l *Leases) hold(ctx context.Context, name string, renewed time.Time, t *time.Ticker, job func(ctx context.Context), log *slog.Logger) bool {
	jctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		job(jctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	release := func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.c.TTL/3)
		defer rcancel()
		if err := l.c.Store.ReleaseLease(rctx, name, l.c.Holder); err != nil {
			log.Warn("release lease", slog.Any("error", err))
		} else {
			log.Info("lease released")
		}
	}
	for {
		select {
		case <-ctx.Done():
			stop()
			release()
			return true
		case <-done:
			cancel()
			release()
			return true
		case <-t.C:
		}
		start := time.Now()
		actx, acancel := context.WithTimeout(ctx, l.c.TTL/3)
		ok, err := l.c.Store.AcquireLease(actx, name, l.c.Holder, l.c.TTL)
		acancel()
		switch {
		case err == nil && ok:
			renewed = start
			continue
		case err == nil:
			log.Warn("lease lost to another holder: the job stops here")
		case ctx.Err() != nil:
			continue // ends above
		case time.Since(renewed) < l.c.TTL*2/3:
			log.Warn("renew lease", slog.Any("error", err))
			continue
		default:
			log.Warn("lease not renewed in time: the job stops here", slog.Any("error", err))
		}
		stop()
		return false
	}
}
