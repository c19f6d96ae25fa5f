package tlsrpt

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSaveLoad(t *testing.T) {
	orig := NewRecorder()
	record(orig)
	var saved bytes.Buffer
	if err := orig.Save(&saved); err != nil {
		t.Fatal(err)
	}
	loaded := NewRecorder()
	if err := loaded.Load(bytes.NewReader(saved.Bytes())); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := loaded.Save(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(saved.Bytes(), again.Bytes()) {
		t.Errorf("saving what was loaded gives\n%s\nwant\n%s", again.Bytes(), saved.Bytes())
	}
	for _, day := range orig.Days() {
		want, got := orig.Take(day), loaded.Take(day)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("day %v: loaded reports %+v, want %+v", day, got, want)
		}
	}
}

func TestLoadMerges(t *testing.T) {
	r := NewRecorder()
	r.Record(Result{Domain: "example.com", Success: true}, day1)
	var saved bytes.Buffer
	if err := r.Save(&saved); err != nil {
		t.Fatal(err)
	}
	if err := r.Load(bytes.NewReader(saved.Bytes())); err != nil {
		t.Fatal(err)
	}
	if n := r.Take(day1)["example.com"].Policies[0].Summary.Successful; n != 2 {
		t.Errorf("after loading its own counts, %d successes, want 2", n)
	}
}

func TestLoadKeepsTaken(t *testing.T) {
	r := NewRecorder()
	r.Record(Result{Domain: "example.com", Success: true}, day1)
	r.Take(day1)
	var saved bytes.Buffer
	if err := r.Save(&saved); err != nil {
		t.Fatal(err)
	}
	fresh := NewRecorder()
	if err := fresh.Load(&saved); err != nil {
		t.Fatal(err)
	}
	fresh.Record(Result{Domain: "example.com", Success: true}, day1.Add(time.Hour))
	if fresh.Dropped() != 1 || len(fresh.Days()) != 0 {
		t.Errorf("a result for a day taken before the restart was counted")
	}
}

func TestLoadRefuses(t *testing.T) {
	for _, in := range []string{``, `{`, `{"version":2,"days":[]}`, `[]`} {
		if err := NewRecorder().Load(strings.NewReader(in)); err == nil {
			t.Errorf("Load(%q) succeeded", in)
		}
	}
}

func TestSaveFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tlsrpt.json")
	r := NewRecorder()
	if err := r.LoadFile(path); err != nil {
		t.Fatalf("LoadFile of a missing file: %v", err)
	}
	record(r)
	if err := r.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	r.Record(Result{Domain: "later.example", Success: true}, day2)
	if err := r.SaveFile(path); err != nil { // over the first
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("directory holds %v (%v), want only the file", entries, err)
	}
	loaded := NewRecorder()
	if err := loaded.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if got := loaded.Take(day2)["later.example"]; got == nil {
		t.Error("the second save was not loaded")
	}
	if err := r.SaveFile(filepath.Join(dir, "missing", "x.json")); err == nil {
		t.Error("SaveFile into a missing directory succeeded")
	}
}
