package outbound

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/mtad/mtad/internal/crlf"
)

// maxChunked bounds the messages sent with BDAT. The body is read whole
// before the first byte goes out, so that a failed journal read costs the
// transaction nothing: a chunk, unlike DATA, cannot be abandoned midway,
// and some servers (go-smtp v0.25.1) take a chunk cut short by a closed
// connection for a whole one. Larger messages stream with DATA.
const maxChunked = 1 << 20

// chunkBufs holds the buffers bodies are read into for BDAT.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// chunked reports whether tx goes as one "BDAT <size> LAST" chunk (RFC
// 3030), pipelined behind MAIL and RCPT: the whole transaction in one
// write and one round trip, where DATA needs a second one for its 354,
// and the body sent as it is, without dot-stuffing. It needs CHUNKING and
// PIPELINING and an SMTP server (LMTP gets DATA, with its per-recipient
// replies), and the body's exact size, at most maxChunked.
func (c *Conn) chunked(tx Tx) bool {
	return !c.opts.LMTP && !c.opts.NoChunking && c.has("CHUNKING") && tx.Size > 0 && tx.Size <= maxChunked && c.pipelining(tx)
}

// sendChunked sends MAIL, RCPT, BDAT LAST and the message at once, then
// reads the replies in order. The chunk follows its command whatever the
// replies before it, and the server reads it even when it refuses the
// BDAT (RFC 3030 section 2), so a refused MAIL or recipients leave the
// session usable. A body that cannot be read fails the transaction
// before anything is sent.
func (t *txn) sendChunked() (bool, *Error) {
	c := t.c
	bp := chunkBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxChunked {
			*bp = (*bp)[:0]
			chunkBufs.Put(bp)
		}
	}()
	body, err := readExactly((*bp)[:0], t.tx.body(), t.tx.Size)
	*bp = body
	if err != nil {
		e := &Error{Temporary: true, Stage: StageData, Class: ClassJournal, Message: truncate(err.Error()), Err: err}
		t.fill(e.Reply())
		return false, nil // nothing was sent: the session is as it was
	}
	if !cleanLines(body) {
		// DATA puts bare CR and LF right and ends the message with CRLF;
		// a chunk goes as it is. Stored mail is normalized at submission,
		// so this is for bodies from elsewhere.
		t.tx.Body = bytes.NewReader(body)
		return t.sendPipelined()
	}
	rset := false
	if e := c.step(t.ctx, StageData, c.opts.Timeouts.Data, func() error {
		rset = c.queueEnvelope(t.tx)
		c.wire.queue("BDAT " + strconv.FormatInt(t.tx.Size, 10) + " LAST")
		c.wire.w.W.Write(body)
		return c.wire.flush()
	}); e != nil {
		t.fill(e.Reply())
		return false, e
	}
	mailErr, e := t.envelopeReplies(func() error { return c.mailReply(rset) })
	if e != nil {
		return false, e
	}
	var text string
	e = c.step(t.ctx, StageData, c.opts.Timeouts.Data, func() error {
		var err error
		text, err = c.wire.reply(250)
		return err
	})
	if mailErr != nil || len(t.accepted) == 0 {
		// Nothing to deliver: the BDAT was refused for want of a
		// recipient (or, odd, taken for no one).
		if e != nil && e.fatal() {
			return false, e
		}
		return false, nil
	}
	return t.final(text, e)
}

// cleanLines reports whether b has CRLF line ends only and ends with one.
func cleanLines(b []byte) bool {
	return bytes.HasSuffix(b, []byte("\r\n")) && crlf.Only(b)
}

// readExactly appends exactly size bytes of r to buf; a body shorter or
// longer than size is an error.
func readExactly(buf []byte, r io.Reader, size int64) ([]byte, error) {
	buf = slices.Grow(buf, int(size))[:size]
	if n, err := io.ReadFull(r, buf); err != nil {
		return buf[:n], fmt.Errorf("reading the message body: %d bytes of %d: %w", n, size, err)
	}
	var one [1]byte
	if m, _ := r.Read(one[:]); m > 0 {
		return buf, fmt.Errorf("reading the message body: longer than its size %d", size)
	}
	return buf, nil
}
