package persistence

import (
	"bytes"
	"time"

	"github.com/cockroachdb/pebble/v2"
	dto "github.com/prometheus/client_model/go"
)

// Value separation. A message that waits (a deferred recipient, a backlog)
// keeps its body in the LSM until it is delivered, and without separation
// every compaction that passes over it rewrites the whole body. With
// separation a flush writes each body chunk of at least separateBodiesFrom
// bytes once into a blob file, and the sstables, which compactions
// rewrite, hold only its key and a handle of a few bytes. Mail that is
// delivered while still in the memtable never reaches a flush and is
// unaffected. See TestMeasureBacklog for the figures behind the numbers.
//
// Only body chunks are separated (bodiesOnlySpanPolicy): envelopes and
// recipient records are small, read together at Load and rewritten by
// Update, so they stay in place.
//
// Pebble requires FormatValueSeparation for blob files, which pebbleFormat
// is; Open ratchets an older store up to it (pebble.Open calls
// ratchetFormatMajorVersionLocked when Options.FormatMajorVersion is
// above the store's), so existing journals open unchanged and their
// sstables are separated as compactions rewrite them.
const (
	// separateBodiesFrom is the smallest body chunk moved into a blob
	// file: 256 bytes, below which the handle left in the sstable and the
	// extra read of a blob block cost about what rewriting the value in
	// place does. A body is hardly ever smaller (a Received line alone is
	// some 150 bytes). Measured (TestMeasureBacklog, 2 cores, backlog
	// kept): 400,000 bodies of 600 bytes compacted 261-432 MiB without
	// separation and 25 MiB with it; 150,000 of 5 KiB, 309-370 MiB and
	// 18-26 MiB; write amplification fell from 2.5-3.0 to 1.8-2.0.
	separateBodiesFrom = 256

	// blobReferenceDepth bounds the blob files one sstable may refer to
	// before a compaction gathers their values into new ones (Pebble's
	// own tests use 10): a body read costs at most that many blob files
	// open, and locality is restored without rewriting values often.
	blobReferenceDepth = 10

	// blobRewriteAge and blobGarbageRatio: a queue deletes most of what it
	// writes, so blob files fill with the bodies of delivered mail; one
	// older than blobRewriteAge whose values are more than
	// blobGarbageRatio dead is rewritten to give the space back. The age
	// keeps Pebble from rewriting files the next deliveries would empty
	// anyway.
	blobRewriteAge   = 15 * time.Minute
	blobGarbageRatio = 0.5
)

func bodySeparation(minSize int) pebble.ValueSeparationPolicy {
	return pebble.ValueSeparationPolicy{
		Enabled:               true,
		MinimumSize:           minSize,
		MaxBlobReferenceDepth: blobReferenceDepth,
		RewriteMinimumAge:     blobRewriteAge,
		TargetGarbageRatio:    blobGarbageRatio,
	}
}

// bodiesOnlySpanPolicy keeps values in place everywhere but in the body
// prefix, where the ValueSeparationPolicy applies. Pebble asks it for the
// first key of each table a flush or compaction writes, and ends that
// table at the returned end key.
func bodiesOnlySpanPolicy(start []byte) (pebble.SpanPolicy, []byte, error) {
	inPlace := pebble.SpanPolicy{ValueStoragePolicy: pebble.ValueStorageLowReadLatency}
	lo, hi := prefixBounds(prefixBody)
	switch {
	case bytes.Compare(start, lo) < 0:
		return inPlace, lo, nil
	case bytes.Compare(start, hi) < 0:
		return pebble.SpanPolicy{}, hi, nil
	}
	return inPlace, nil, nil
}

// WriteStats is how much the journal has written since Open, from Pebble's
// metrics. All counters only grow.
//
//	WriteAmplification = (WALPhysicalBytes + FlushedBytes + CompactedBytes) / WALLogicalBytes
//
// that is every byte written to disk (the WAL with its record framing,
// sstables and blob files written by flushes, sstables and blob files
// written by compactions) per byte of batch data committed; 0 when nothing
// was committed. Obsolete-file deletion, the MANIFEST and OPTIONS files are
// not counted. Mail delivered before its memtable is flushed costs about
// 1; a backlog that sits through compactions costs more.
type WriteStats struct {
	WALLogicalBytes  uint64 // batch data committed (Pebble: WAL.BytesIn)
	WALPhysicalBytes uint64 // bytes written to WAL files, with chunk headers and padding (WAL.BytesWritten)
	FlushedBytes     uint64 // sstable and blob file bytes written by flushes
	CompactedBytes   uint64 // sstable and blob file bytes written by compactions
	BlobBytes        uint64 // the part of FlushedBytes and CompactedBytes that went to blob files
	Fsyncs           uint64 // WAL fsyncs (one serves every commit that waited on it)

	WriteAmplification float64
}

// WriteStats returns the journal's write statistics; after Close it
// returns the zero value. It is cheap enough for a metrics scrape.
func (j *Journal) WriteStats() WriteStats {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return WriteStats{}
	}
	return writeStats(j.db.Metrics())
}

// writeStats sums the levels itself: Metrics.Total counts the WAL's bytes
// as flushed too. Pebble v2.1.7 adds the blob bytes a flush writes to both
// BlobBytesFlushed and BlobBytesCompacted of L0 (runCompaction in
// compaction.go sets both for a flush), so they are taken out of the
// latter once; TestPebbleBlobAccounting notices if that changes.
func writeStats(m *pebble.Metrics) WriteStats {
	s := WriteStats{WALLogicalBytes: m.WAL.BytesIn, WALPhysicalBytes: m.WAL.BytesWritten}
	for i := range m.Levels {
		l := &m.Levels[i]
		blobCompacted := l.BlobBytesCompacted - min(l.BlobBytesCompacted, l.BlobBytesFlushed)
		s.FlushedBytes += l.TableBytesFlushed + l.BlobBytesFlushed
		s.CompactedBytes += l.TableBytesCompacted + blobCompacted
		s.BlobBytes += l.BlobBytesFlushed + blobCompacted
	}
	if h := m.LogWriter.FsyncLatency; h != nil {
		var d dto.Metric
		if h.Write(&d) == nil {
			s.Fsyncs = d.GetHistogram().GetSampleCount()
		}
	}
	if s.WALLogicalBytes > 0 {
		s.WriteAmplification = float64(s.WALPhysicalBytes+s.FlushedBytes+s.CompactedBytes) / float64(s.WALLogicalBytes)
	}
	return s
}
