package persistence

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mtad/mtad/messages"
)

const crashHelperEnv = "MTAD_PERSISTENCE_CRASH_HELPER"

// TestCrashHelperProcess is not a test: TestCrashKeepsCommitted runs the
// test binary with only this function. Eight goroutines accept messages
// and finish every third one, printing each id once its commit returned
// (and before a Finish starts), until the parent kills the process. Four
// more stream bodies of one to four chunks through NewBody and AcceptBody,
// so the kill also lands between the chunks of a message.
func TestCrashHelperProcess(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	j, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	say := func(verb string, id messages.MsgID) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Println(verb, uint64(id))
	}
	for range 8 {
		go func() {
			for {
				env := sampleEnvelope(j.NextID())
				if err := j.Accept(env, []byte(env.ID.String())); err != nil {
					fmt.Println("error:", err)
					os.Exit(1)
				}
				say("accepted", env.ID)
				if env.ID%3 == 1 {
					deferred(env)
					if err := j.Defer(env.ID, env.Rcpts[1:2]); err != nil {
						fmt.Println("error:", err)
						os.Exit(1)
					}
					say("deferred", env.ID)
				}
				if env.ID%3 != 0 {
					continue
				}
				say("finishing", env.ID)
				if j.Finish(env.ID, len(env.Rcpts)) == nil {
					say("finished", env.ID)
				}
			}
		}()
	}
	for range 4 {
		go func() {
			for {
				env := sampleEnvelope(j.NextID())
				w := j.NewBody(env.ID)
				_, err := io.Copy(w, newBodySource(env.ID, streamedSize(env.ID)))
				if err == nil {
					err = j.AcceptBody(env, w)
				}
				if err != nil {
					fmt.Println("error:", err)
					os.Exit(1)
				}
				say("streamed", env.ID)
				say("accepted", env.ID)
			}
		}()
	}
	select {}
}

// deferred changes env as the helper's Defer does: its second recipient
// tried again later.
func deferred(env *messages.Envelope) {
	env.Rcpts[1].Status = messages.StatusPending
	env.Rcpts[1].Attempts = 7
	env.Rcpts[1].NextAttempt = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	env.Rcpts[1].LastReply = messages.Reply{Code: 451, Enhanced: "4.7.1", Text: "later"}
}

// streamedSize is the size of the body the helper streams for id.
func streamedSize(id messages.MsgID) int {
	return []int{100, bodyChunkSize + 5, 3*bodyChunkSize + 7}[id%3]
}

// TestCrashKeepsCommitted kills a process that is committing with SIGKILL
// and checks that every message it was told was accepted is in the
// journal unless a Finish of it had started, and every one it was told was
// finished is not. A Defer is not synced, and Pebble writes its WAL in
// the background, so the kill may take one back: a message it was told
// was deferred has its state from before the Defer or from after it,
// whole.
func TestCrashKeepsCommitted(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := readUntilKilled(t, cmd, bufio.NewScanner(out), 2000)

	j := openT(t, dir)
	present := make(map[messages.MsgID]bool)
	kept := 0 // messages with their deferred state
	for _, env := range loadAll(t, j) {
		present[env.ID] = true
		want := sampleEnvelope(env.ID)
		if env.Size == int64(streamedSize(env.ID)) {
			want.Size = env.Size // AcceptBody journals the body's size
		}
		if env.Rcpts[1].Attempts == 7 {
			deferred(want)
			kept++
		}
		checkEqual(t, env, want)
		// A message committed just before the kill was not reported:
		// its body may be of either kind.
		plain, streamed := []byte(env.ID.String()), bodyOf(env.ID, streamedSize(env.ID))
		got, err := j.Body(env.ID)
		switch {
		case err != nil:
			t.Errorf("message %v: %v", env.ID, err)
		case r["streamed"][env.ID] && !bytes.Equal(got, streamed),
			r["accepted"][env.ID] && !r["streamed"][env.ID] && !bytes.Equal(got, plain),
			!bytes.Equal(got, plain) && !bytes.Equal(got, streamed):
			t.Errorf("message %v: body of %d bytes is not the one written", env.ID, len(got))
		}
	}
	checkNoOrphans(t, j)
	for id := range r["accepted"] {
		if !present[id] && !r["finishing"][id] {
			t.Errorf("message %v was accepted but is lost", id)
		}
	}
	for id := range r["finished"] {
		if present[id] {
			t.Errorf("message %v was finished but is back", id)
		}
	}
	t.Logf("%d accepted (%d streamed), %d deferred (%d kept), %d finished, %d in the journal",
		len(r["accepted"]), len(r["streamed"]), len(r["deferred"]), kept, len(r["finished"]), len(present))
}

// checkNoOrphans checks that every body record has an envelope and no
// pending record is left.
func checkNoOrphans(t *testing.T, j *Journal) {
	t.Helper()
	lo, hi := prefixBounds(prefixPending)
	if n := countKeys(t, j, lo, hi); n != 0 {
		t.Errorf("%d pending records after Open", n)
	}
	lo, hi = prefixBounds(prefixBody)
	it, err := j.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		id, _ := keyID(it.Key())
		if _, err := j.get(envelopeKey(id)); err != nil {
			t.Errorf("body record %x without envelope: %v", it.Key(), err)
		}
	}
}

// readUntilKilled collects the helper's reports, the ids it said each
// verb of, until it has accepted n messages or 30s have passed, then kills
// it with SIGKILL and reads the rest of what it wrote.
func readUntilKilled(t *testing.T, cmd *exec.Cmd, s *bufio.Scanner, n int) map[string]map[messages.MsgID]bool {
	reports := map[string]map[messages.MsgID]bool{
		"accepted": {}, "finishing": {}, "finished": {}, "streamed": {}, "deferred": {},
	}
	deadline := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	killed := false
	for s.Scan() {
		verb, arg, _ := strings.Cut(s.Text(), " ")
		id, err := strconv.ParseUint(arg, 10, 64)
		if ids := reports[verb]; ids != nil && err == nil {
			ids[messages.MsgID(id)] = true
		} else {
			t.Errorf("helper: %s", s.Text())
		}
		if len(reports["accepted"]) >= n && !killed {
			cmd.Process.Kill()
			killed = true
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("helper accepted only %d messages", len(reports["accepted"]))
	}
	return reports
}
