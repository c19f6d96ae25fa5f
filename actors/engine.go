package actors

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/deliverylog"
	"github.com/mtad/mtad/limits"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/quota"
	"github.com/mtad/mtad/resolver"
	"github.com/mtad/mtad/tlsrpt"
)

// Journal is what the engine needs of the journal.
type Journal interface {
	NextID() messages.MsgID
	Accept(env *messages.Envelope, body []byte) error
	bodySource // Body (DSNs) and OpenBody (delivery); see connection.go
	Update(id messages.MsgID, rcpts []messages.Recipient) error
	Defer(id messages.MsgID, rcpts []messages.Recipient) error // Update, not synced: deferrals only
	Finish(id messages.MsgID, nrcpts int) error
	FinishSized(id messages.MsgID, nrcpts int, size int64) error
	Get(id messages.MsgID) (*messages.Envelope, error)
	Load(fn func(env *messages.Envelope) error) error
}

// Resolver is what the engine needs of DNS.
type Resolver interface {
	LookupMXFull(ctx context.Context, domain string) (resolver.MXResult, error)
	LookupIP(ctx context.Context, host string, order resolver.IPOrder) ([]netip.Addr, error)
	LookupTLSA(ctx context.Context, name string) (resolver.TLSAResult, error)
}

// Deps are the engine's collaborators.
type Deps struct {
	Config   *config.Config
	Journal  Journal
	Resolver Resolver
	Delivery *deliverylog.Log // may be nil
	Logger   *slog.Logger

	RootCAs    *x509.CertPool   // trusted roots for outbound TLS; nil: the system's
	MTASTS     stsGetter        // MTA-STS policies; nil: none are fetched
	TLSReports *tlsrpt.Recorder // RFC 8460 outcomes; nil: not recorded
	Quotas     *quota.Book      // queue quotas to release as recipients finish; nil: none
	Limits     limits.Store     // shaping state for outbound limits; nil: limits off

	// Parking (see qmsg): zero means parkAfter and maxLoaded. Tests set
	// them small.
	ParkAfter time.Duration
	MaxLoaded int

	live    *atomic.Pointer[config.Config] // the configuration now; Engine.Reload replaces it
	susp    *suspensionSet                 // the operator's suspensions in force, for queue actors that start later
	workers *workers                       // goroutines for mailboxes, deliveries and journal writes
}

// Cfg returns the configuration in force. Config is the one the engine
// started with; a reload replaces what Cfg returns. One decision should
// read Cfg once and use that snapshot throughout.
func (d *Deps) Cfg() *config.Config {
	if d.live == nil {
		return d.Config
	}
	return d.live.Load()
}

// Engine is a running actor tree.
type Engine struct {
	system   *actor.ActorSystem
	root     *actor.PID
	deps     *Deps
	stopOnce sync.Once
	stopErr  error
}

// Start builds the actor tree. It delivers nothing until messages arrive
// through Enqueue or Recover.
func Start(deps Deps) (*Engine, error) {
	if deps.Config == nil || deps.Journal == nil || deps.Resolver == nil {
		return nil, errors.New("actors: config, journal and resolver are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	d := &deps
	d.live = new(atomic.Pointer[config.Config])
	d.live.Store(d.Config)
	d.susp = &suspensionSet{keys: map[string]bool{}}
	d.workers = newWorkers()
	sysLog := d.Logger.With("component", "protoactor")
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(levelFloor{sysLog.Handler(), slog.LevelWarn})
	}))
	starts := 0
	props := d.props(func() actor.Actor {
		starts++
		return newRoot(d, starts > 1)
	},
		actor.WithSupervisor(actor.NewOneForOneStrategy(10, time.Minute, restartDecider)))
	root, err := system.Root.SpawnNamed(props, "root")
	if err != nil {
		d.workers.release()
		return nil, fmt.Errorf("actors: spawn root: %w", err)
	}
	e := &Engine{system: system, root: root, deps: d}
	if err := e.restoreSuspensions(); err != nil {
		_ = e.Stop(context.Background())
		return nil, fmt.Errorf("actors: restore suspensions: %w", err)
	}
	return e, nil
}

// Enqueue hands a journaled message to the engine; the engine owns env
// from now on.
func (e *Engine) Enqueue(env *messages.Envelope) {
	e.system.Root.Send(e.root, &messages.Enqueue{Env: env})
}

// Recover replays the journal into the engine: messages with pending
// recipients are enqueued; messages whose recipients are all final are
// deleted. It returns how many messages were enqueued.
func (e *Engine) Recover() (int, error) {
	n := 0
	err := e.deps.Journal.Load(func(env *messages.Envelope) error {
		if env.Pending() == 0 {
			return e.deps.Journal.FinishSized(env.ID, len(env.Rcpts), env.Size)
		}
		if e.deps.Quotas != nil && env.Source != "dsn" && env.Source != "report" {
			e.deps.Quotas.Charge(env) // as admission charged it: the quotas come back exactly
		}
		n++
		e.Enqueue(env)
		return nil
	})
	return n, err
}

// Stop drains the engine: no new delivery starts, deliveries in flight may
// finish and have their outcome journaled until ctx ends; then every actor
// stops. Deliveries cut short are retried after the next start.
func (e *Engine) Stop(ctx context.Context) error {
	e.stopOnce.Do(func() { e.stopErr = e.stop(ctx) })
	return e.stopErr
}

func (e *Engine) stop(ctx context.Context) error {
	done := make(chan struct{})
	e.system.Root.Send(e.root, &messages.Drain{Done: done})
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("actors: deliveries still in flight at shutdown: %w", ctx.Err())
	}
	if werr := e.system.Root.StopFuture(e.root).Wait(); werr != nil && err == nil {
		err = fmt.Errorf("actors: stop: %w", werr)
	}
	e.system.Shutdown()
	e.deps.workers.release()
	return err
}

// restartDecider restarts a crashed queue actor; its state comes back from
// the journal.
func restartDecider(reason any) actor.Directive { return actor.RestartDirective }

// stopDecider stops a crashed child; the parent rebuilds from what it holds.
func stopDecider(reason any) actor.Directive { return actor.StopDirective }

// levelFloor drops records below a level: protoactor logs chatty info.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}
