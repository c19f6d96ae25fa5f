package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/deliverylog"
	"github.com/mtad/mtad/messages"
)

// Response-driven shaping: a destination checks every remote reply it sees
// (per recipient, and the failure of a connection) against the configured
// rules. The first rule that matches acts on the destination for its
// duration: suspend (hold all work), reduce (scale the connections), or
// fail (the recipients that got the reply fail for good). Actions end by
// themselves; each start goes to the delivery log with the rule and reply.

// ruleMatches reports whether a rule matches a reply at a site.
func ruleMatches(r *config.ShapingRule, reply messages.Reply, site string) bool {
	switch {
	case r.Site != "" && r.Site != site:
		return false
	case r.Code >= 100 && reply.Code != r.Code,
		r.Code >= 10 && r.Code < 100 && reply.Code/10 != r.Code,
		r.Code > 0 && r.Code < 10 && reply.Code/100 != r.Code:
		return false
	case r.Enhanced != "" && !hasPrefix(reply.Enhanced, r.Enhanced):
		return false
	case r.Text != nil && !r.Text.MatchString(reply.Text):
		return false
	}
	return reply.Code != 0 || r.Code == 0
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// firstRule returns the first rule matching reply, or nil.
func (d *destinationActor) firstRule(reply messages.Reply) *config.ShapingRule {
	if d.deps.Limits == nil {
		return nil
	}
	rules := d.deps.Cfg().Queue.Shaping
	for i := range rules {
		if ruleMatches(&rules[i], reply, d.site) {
			return &rules[i]
		}
	}
	return nil
}

// shapeResult applies the rules to a job's replies; fail rules turn the
// matching replies into permanent failures before the queue sees them.
func (d *destinationActor) shapeResult(ctx actor.Context, r *messages.JobResult) {
	if len(d.deps.Cfg().Queue.Shaping) == 0 || d.deps.Limits == nil {
		return
	}
	for i, reply := range r.Replies {
		if reply.Success() {
			continue
		}
		rule := d.firstRule(reply)
		if rule == nil {
			continue
		}
		if rule.Action == config.ShapeFail {
			r.Replies[i] = failedBy(rule, reply)
		}
		d.act(ctx, rule, reply, r.Host)
	}
}

// failedBy is the permanent reply a fail rule gives.
func failedBy(rule *config.ShapingRule, reply messages.Reply) messages.Reply {
	enh := "5.0.0"
	if len(reply.Enhanced) > 1 {
		enh = "5" + reply.Enhanced[1:]
	}
	return messages.Reply{Code: 550, Enhanced: enh, Text: "failed by shaping rule " + rule.Name + ": " + reply.String(), Class: "shaping"}
}

// act starts a rule's action on this destination.
func (d *destinationActor) act(ctx actor.Context, rule *config.ShapingRule, reply messages.Reply, host string) {
	now := time.Now()
	until := now.Add(rule.Duration)
	switch rule.Action {
	case config.ShapeSuspend, config.ShapeReduce:
		// In the shared store, so it outlives this actor (a destination
		// with nothing to do stops; the next one must still wait).
		if f, _ := d.deps.Limits.Adjusted(d.shapeKey(), now); f == 0 || (f < 1 && rule.Action == config.ShapeReduce) {
			return // already in force (a suspension overrides a reduction)
		}
		factor := 0.0
		if rule.Action == config.ShapeReduce {
			factor = rule.Factor
		}
		d.deps.Limits.Adjust(d.shapeKey(), factor, until)
		if factor == 0 {
			d.hold(ctx, until, "suspended")
		} else {
			// Lower the rates and concurrency of the limits keyed on this
			// destination (its domain, site, queue) too.
			for _, a := range applicable(d.deps.Cfg(), limitValues{rcptDomain: d.domain, site: d.site}) {
				for _, k := range []string{a.key + "|msg", a.key + "|conn", a.key + "|conc"} {
					d.deps.Limits.Adjust(k, factor, until)
				}
			}
		}
	case config.ShapeFail:
	}
	d.deps.Delivery.Write(deliverylog.Event{Event: deliverylog.Shaping, MsgID: "-", Domain: d.domain, Host: host,
		Code: reply.Code, Enhanced: reply.Enhanced, Reply: reply.Text, Rule: rule.Name, Action: rule.Action, NextTry: until})
	d.deps.Logger.Warn("shaping rule fired", "domain", d.domain, "rule", rule.Name, "action", rule.Action, "until", until, "reply", reply.String())
}

// shapeKey names this destination's shaping state in the store.
func (d *destinationActor) shapeKey() string { return "shape|" + d.key }

// shaped reports a suspension in force (and until when), and the
// connection cap a reduce rule leaves.
func (d *destinationActor) shaped(now time.Time) (suspended bool, until time.Time, connCap int) {
	connCap = d.qcfg.DestinationConnections
	if d.deps.Limits == nil {
		return false, time.Time{}, connCap
	}
	f, until := d.deps.Limits.Adjusted(d.shapeKey(), now)
	if f <= 0 {
		return true, until, connCap
	}
	if f < 1 {
		connCap = max(1, int(float64(connCap)*f))
	}
	return false, until, connCap
}
