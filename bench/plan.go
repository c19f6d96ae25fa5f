package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Addresses the harness sends from and to. The .test TLD is reserved
// (RFC 6761 section 6.2), so no name here can leak onto the Internet.
const (
	senderAddr  = "bench@sender.bench.test"
	rcptDomain  = ".bench.test"
	ehloName    = "bench.localhost"
	sinkDomain  = "sink.bench.test"
	rcptPrefix  = "b"
	rcptIDSep   = '-'
	domainLabel = "d"
)

// rcptClass is what the sink answers to a RCPT for an address.
type rcptClass uint8

const (
	classOK   rcptClass = iota // 250
	classTemp                  // 451 4.7.1 on the first attempt, 250 after
	classPerm                  // 550 5.1.1 always
)

// plan is the immutable description of one injection: which messages exist,
// their recipients and how the sink treats each recipient. The injector and
// the sink of one phase share it.
//
// Recipient j of message id is slot id*rcpts+j; its address is
// "b<id>-<j>@d<k>.bench.test" with k = slot mod domains, so the sink can map
// an address back to its slot without a table.
type plan struct {
	n, size, rcpts, domains int
	tempShare, permShare    float64
	run                     string      // random run tag, in X-Bench-Run
	classes                 []rcptClass // by slot
}

func newPlan(n, size, rcpts, domains int, tempShare, permShare float64) (*plan, error) {
	switch {
	case n < 1 || rcpts < 1 || domains < 1:
		return nil, fmt.Errorf("messages, recipients and domains must be at least 1")
	case n > maxMessages || n*rcpts > maxSlots:
		return nil, fmt.Errorf("at most %d messages and %d recipients in all", maxMessages, maxSlots)
	case tempShare < 0 || permShare < 0 || tempShare+permShare > 1:
		return nil, fmt.Errorf("temp-fail and perm-fail shares must be >= 0 and sum to at most 1")
	}
	p := &plan{n: n, size: size, rcpts: rcpts, domains: domains,
		tempShare: tempShare, permShare: permShare, run: newRunTag()}
	p.classes = make([]rcptClass, n*rcpts)
	for slot := range p.classes {
		p.classes[slot] = classify(p.addr(slot), tempShare, permShare)
	}
	return p, nil
}

// Bounds that keep slot numbers in an int32 and memory modest.
const (
	maxMessages = 10_000_000
	maxSlots    = 50_000_000
)

func newRunTag() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// slots is the number of recipient slots in the plan.
func (p *plan) slots() int { return p.n * p.rcpts }

// addr is the recipient address of slot.
func (p *plan) addr(slot int) string {
	id, j := slot/p.rcpts, slot%p.rcpts
	b := make([]byte, 0, 40)
	b = append(b, rcptPrefix...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, rcptIDSep)
	b = strconv.AppendInt(b, int64(j), 10)
	b = append(b, '@')
	b = append(b, domainLabel...)
	b = strconv.AppendInt(b, int64(slot%p.domains), 10)
	b = append(b, rcptDomain...)
	return string(b)
}

// slotOf maps an address made by addr back to its slot; ok is false for any
// other address (a DSN to the sender, leftovers of another plan).
func (p *plan) slotOf(addr string) (slot int, ok bool) {
	local, domain, found := strings.Cut(addr, "@")
	if !found || !strings.HasSuffix(domain, rcptDomain) {
		return 0, false
	}
	local, found = strings.CutPrefix(local, rcptPrefix)
	if !found {
		return 0, false
	}
	idStr, jStr, found := strings.Cut(local, string(rcptIDSep))
	if !found {
		return 0, false
	}
	id, err1 := strconv.Atoi(idStr)
	j, err2 := strconv.Atoi(jStr)
	if err1 != nil || err2 != nil || id < 0 || id >= p.n || j < 0 || j >= p.rcpts {
		return 0, false
	}
	slot = id*p.rcpts + j
	return slot, p.addr(slot) == strings.ToLower(addr)
}

// class is how the sink answers slot's recipient.
func (p *plan) class(slot int) rcptClass { return p.classes[slot] }

// deliverable counts the slots the sink will accept eventually: the most
// deliveries a phase can see.
func (p *plan) deliverable() int {
	k := 0
	for _, c := range p.classes {
		if c != classPerm {
			k++
		}
	}
	return k
}

// classify picks an address's class from a hash of the address, so the
// choice is the same in every run and in every part of the harness.
func classify(addr string, tempShare, permShare float64) rcptClass {
	h := fnv.New64a()
	_, _ = h.Write([]byte(addr))
	u := float64(mix64(h.Sum64())>>11) / (1 << 53) // uniform in [0, 1)
	switch {
	case u < permShare:
		return classPerm
	case u < permShare+tempShare:
		return classTemp
	}
	return classOK
}

// mix64 is the splitmix64 finaliser: FNV's high bits are poorly mixed for
// short inputs that differ in their last bytes.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
