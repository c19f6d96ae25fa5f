package actors

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtad/mtad/internal/testsink"
	"github.com/mtad/mtad/resolver"
)

type countingResolver struct{ n atomic.Int64 }

func (c *countingResolver) LookupMXFull(ctx context.Context, d string) (resolver.MXResult, error) {
	c.n.Add(1)
	return loopback{}.LookupMXFull(ctx, d)
}
func (c *countingResolver) LookupTLSA(ctx context.Context, s string) (resolver.TLSAResult, error) {
	return resolver.TLSAResult{}, nil
}
func (c *countingResolver) LookupIP(ctx context.Context, h string, o resolver.IPOrder) ([]netip.Addr, error) {
	c.n.Add(1)
	return loopback{}.LookupIP(ctx, h, o)
}

func TestRegressReloadRenamedRoute(t *testing.T) {
	sink := testsink.Start(t)
	sink.SetDataDelay(800*time.Millisecond, func(testsink.Tx) string { return "" })
	res := &countingResolver{}
	h := newHarnessWith(t, sink.Addr, "", func(d *Deps) { d.Resolver = res })
	for i := range 4 {
		h.submit(fmt.Sprint("m", i), fmt.Sprintf("r%d@slow.test", i))
	}
	time.Sleep(300 * time.Millisecond)
	if err := h.engine.Reload(relayConfig(t, sink.Addr, "relay2", "")); err != nil {
		t.Fatal(err)
	}
	before := res.n.Load()
	time.Sleep(3 * time.Second)
	t.Logf("resolver calls in 3s after the reload: %d; delivered %v", res.n.Load()-before, ids(sink))
	if len(ids(sink)) != 4 {
		t.Fatalf("only %d of 4 delivered", len(ids(sink)))
	}
}
