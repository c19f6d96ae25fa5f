package main

import (
	"context"
	"fmt"
)

// largeStats is one size of -scenario large.
type largeStats struct {
	Size           int           `json:"size"`
	MaxMessageSize string        `json:"max_message_size"` // mtad's session.max-message-size for this size
	Phase          *phaseStats   `json:"phase"`
	AcceptRate     float64       `json:"accepted_per_second"`
	DeliverRate    float64       `json:"delivered_per_second"`
	MiBPerSecond   float64       `json:"delivered_mib_per_second"`
	PeakRSSKiB     *int64        `json:"mtad_peak_rss_kib"`       // VmHWM of an mtad that saw this size only
	RSSOverSize    *float64      `json:"mtad_peak_rss_over_size"` // VmHWM / message size
	Journal        *journalStats `json:"journal"`
	Exit           string        `json:"mtad_exit"`
}

// runLarge runs each of -large-sizes against an mtad of its own, whose
// max-message-size leaves room for it. The last size is the one profiled.
func runLarge(ctx context.Context, r *rig) error {
	for i, size := range r.cfg.largeSizes {
		ls, err := r.largePass(ctx, size, i == len(r.cfg.largeSizes)-1)
		if ls != nil {
			r.rep.Large = append(r.rep.Large, ls)
		}
		if err != nil {
			return fmt.Errorf("size %d: %w", size, err)
		}
	}
	return nil
}

// largePass runs -n messages of size bytes through a fresh mtad.
func (r *rig) largePass(ctx context.Context, size int, profiled bool) (*largeStats, error) {
	limit := int64(size) + largeSizeHeadroom // room for mtad's trace fields
	ls := &largeStats{Size: size, MaxMessageSize: sizeKB(limit)}
	conf, err := r.writeConf(ctx, fmt.Sprintf("%s-%d", scenarioLarge, size), mtadConf{maxMessageSize: limit})
	if err != nil {
		return nil, err
	}
	_, st, end, err := r.measuredPass(ctx, passRun{size: size, conf: conf, logName: fmt.Sprintf("mtad-%d.log", size),
		label: fmt.Sprintf("large %s", sizeText(size)), judged: fmt.Sprintf("size %s: ", sizeText(size)), profiled: profiled})
	if err != nil {
		return nil, err
	}
	ls.fill(st, end)
	return ls, nil
}

func (ls *largeStats) fill(st *phaseStats, end mtadEnd) {
	ls.Phase, ls.AcceptRate, ls.DeliverRate = st, st.AcceptRate, st.DeliverRate
	ls.MiBPerSecond = ls.DeliverRate * float64(ls.Size) / (1 << 20)
	ls.PeakRSSKiB, ls.Journal, ls.Exit = end.hwm, end.journal, end.exit
	if end.hwm != nil {
		ratio := float64(*end.hwm) * 1024 / float64(ls.Size)
		ls.RSSOverSize = &ratio
	}
}

// rows prints one size of the large section of the report.
func (ls *largeStats) rows(row func(k, f string, a ...any)) {
	s := ls.Phase
	row("size "+sizeText(ls.Size), "accepted %d/%d, delivered %d of %d (missing %d, duplicates %d, body size mismatches %d); max-message-size %s",
		s.Accepted, s.Planned, s.Delivered, s.Expected, s.Missing, s.Duplicates, s.SizeMismatches, ls.MaxMessageSize)
	row("  accepted/s", "%.2f (%.1f MiB/s)", ls.AcceptRate, ls.AcceptRate*float64(ls.Size)/(1<<20))
	row("  delivered/s", "%.2f (%.1f MiB/s)", ls.DeliverRate, ls.MiBPerSecond)
	row("  mtad peak RSS (VmHWM)", "%s (%s the message size)", rssText(ls.PeakRSSKiB), optText(ls.RSSOverSize, "%.1f x"))
	ls.Journal.rows(func(k, f string, a ...any) { row("  "+k, f, a...) })
}

// sizeText renders a byte count in MiB or KiB.
func sizeText(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.4g MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.4g KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
