package persistence

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtad/mtad/messages"
)

const crashHelperEnv = "MTAD_PERSISTENCE_CRASH_HELPER"

// TestCrashHelperProcess is not a test: TestCrashKeepsCommitted runs the
// test binary with only this function. Eight goroutines accept messages
// and finish every third one, printing each id once its commit returned
// (and before a Finish starts), until the parent kills the process.
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
	select {}
}

// TestCrashKeepsCommitted kills a process that is committing with SIGKILL
// and checks that every message it was told was accepted is in the
// journal unless a Finish of it had started, and every one it was told was
// finished is not.
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
	for _, env := range loadAll(t, j) {
		present[env.ID] = true
		checkEqual(t, env, sampleEnvelope(env.ID))
	}
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
	t.Logf("%d accepted, %d finished, %d in the journal",
		len(r["accepted"]), len(r["finished"]), len(present))
}

// readUntilKilled collects the helper's reports, the ids it said each
// verb of, until it has accepted n messages or 30s have passed, then kills
// it with SIGKILL and reads the rest of what it wrote.
func readUntilKilled(t *testing.T, cmd *exec.Cmd, s *bufio.Scanner, n int) map[string]map[messages.MsgID]bool {
	reports := map[string]map[messages.MsgID]bool{
		"accepted": {}, "finishing": {}, "finished": {},
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
