package tlsrpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// stateVersion is the version of the saved form; Load refuses others.
const stateVersion = 1

// state is the saved form of a Recorder: every count, and the last day
// taken.
type state struct {
	Version int        `json:"version"`
	Taken   *time.Time `json:"taken,omitempty"`
	Days    []stateDay `json:"days"`
}

type stateDay struct {
	Day     time.Time     `json:"day"`
	Domains []stateDomain `json:"domains"`
}

type stateDomain struct {
	Domain   string        `json:"domain"`
	Policies []statePolicy `json:"policies"`
}

type statePolicy struct {
	Type    PolicyType    `json:"type"`
	Strings []string      `json:"strings,omitempty"`
	MXHost  string        `json:"mx_host,omitempty"` // the host of TLSA records
	Success uint64        `json:"success"`
	Failure uint64        `json:"failure"`
	Details []stateDetail `json:"details,omitempty"`
	Other   uint64        `json:"other,omitempty"`
}

type stateDetail struct {
	ResultType  string `json:"result_type"`
	SendingIP   string `json:"sending_ip,omitempty"`
	MXHost      string `json:"mx_host,omitempty"`
	ReceivingIP string `json:"receiving_ip,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Count       uint64 `json:"count"`
}

// Save writes every count as JSON, for Load after a restart. It copies the
// counts under the Recorder's lock and writes after releasing it, so a
// slow w never holds up Record.
func (r *Recorder) Save(w io.Writer) error {
	data, err := json.Marshal(r.snapshot())
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// Load adds the counts Save wrote to r's own, within r's bounds (what does
// not fit is counted by Dropped), and takes the later of the two last days
// taken.
func (r *Recorder) Load(rd io.Reader) error {
	var st state
	if err := json.NewDecoder(rd).Decode(&st); err != nil {
		return fmt.Errorf("tlsrpt: loading counts: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("tlsrpt: loading counts: version %d, want %d", st.Version, stateVersion)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if st.Taken != nil {
		r.taken = max(r.taken, dayStart(*st.Taken))
	}
	for _, d := range st.Days {
		start := dayStart(d.Day)
		for _, dom := range d.Domains {
			for _, p := range dom.Policies {
				r.merge(start, dom.Domain, p)
			}
		}
	}
	return nil
}

// merge adds a saved policy's counts, normalized as Record would. It must
// run under r.mu.
func (r *Recorder) merge(start int64, domain string, sp statePolicy) {
	res := Result{Domain: domain, PolicyType: sp.Type, PolicyStrings: sp.Strings, MXHost: sp.MXHost}
	domain, id, ok := normalizeResult(res)
	var p *policyAgg
	if ok {
		p = r.policy(start, domain, id)
	}
	if p == nil {
		r.dropped.Add(sp.Success + sp.Failure)
		return
	}
	p.success += sp.Success
	p.failure += sp.Failure
	p.other += sp.Other
	for _, d := range sp.Details {
		key, reason := normalizeDetail(Result{ResultType: d.ResultType, SendingIP: d.SendingIP,
			MXHost: d.MXHost, ReceivingIP: d.ReceivingIP, FailureReason: d.Reason})
		p.addDetail(key, reason, d.Count, r.maxDetails())
	}
}

// snapshot copies the counts, sorted so that the same counts save the
// same bytes.
func (r *Recorder) snapshot() state {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := state{Version: stateVersion, Days: []stateDay{}}
	if r.taken != 0 {
		t := time.Unix(r.taken, 0).UTC()
		st.Taken = &t
	}
	for start, d := range r.days {
		sd := stateDay{Day: time.Unix(start, 0).UTC()}
		for domain, da := range d.domains {
			sd.Domains = append(sd.Domains, da.state(domain))
		}
		slices.SortFunc(sd.Domains, func(a, b stateDomain) int { return strings.Compare(a.Domain, b.Domain) })
		st.Days = append(st.Days, sd)
	}
	slices.SortFunc(st.Days, func(a, b stateDay) int { return a.Day.Compare(b.Day) })
	return st
}

func (da *domainAgg) state(domain string) stateDomain {
	sd := stateDomain{Domain: domain}
	for _, p := range da.policies {
		sp := statePolicy{Type: p.id.typ, Strings: slices.Clone(p.id.strings), MXHost: p.id.host,
			Success: p.success, Failure: p.failure, Other: p.other}
		for dk, g := range p.details {
			sp.Details = append(sp.Details, stateDetail{ResultType: dk.resultType, SendingIP: dk.sendingIP,
				MXHost: dk.mxHost, ReceivingIP: dk.receivingIP, Reason: g.reason, Count: g.count})
		}
		slices.SortFunc(sp.Details, func(a, b stateDetail) int {
			return strings.Compare(a.ResultType+"\x00"+a.SendingIP+"\x00"+a.MXHost+"\x00"+a.ReceivingIP,
				b.ResultType+"\x00"+b.SendingIP+"\x00"+b.MXHost+"\x00"+b.ReceivingIP)
		})
		sd.Policies = append(sd.Policies, sp)
	}
	slices.SortFunc(sd.Policies, func(a, b statePolicy) int {
		return strings.Compare(policyID{a.Type, a.Strings, a.MXHost}.key(), policyID{b.Type, b.Strings, b.MXHost}.key())
	})
	return sd
}

// SaveFile saves the counts to path so that a crash leaves either the old
// file or the new one: it writes a temporary file in the same directory,
// syncs it, renames it over path and syncs the directory.
func (r *Recorder) SaveFile(path string) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("tlsrpt: saving counts: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("tlsrpt: saving counts: %w", err)
		}
	}()
	if err = r.Save(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// LoadFile loads the counts SaveFile wrote to path; a missing file holds
// no counts.
func (r *Recorder) LoadFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tlsrpt: loading counts: %w", err)
	}
	defer f.Close()
	return r.Load(f)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
