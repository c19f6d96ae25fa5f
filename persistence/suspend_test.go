package persistence

import (
	"slices"
	"testing"
)

func TestSuspensionsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	if got, err := j.Suspensions(); err != nil || len(got) != 0 {
		t.Fatalf("new journal: %v, %v", got, err)
	}
	if err := j.SaveSuspensions([]string{"rcpt:b.test", "queue:bulk"}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir)
	got, err := j.Suspensions()
	if err != nil || !slices.Equal(got, []string{"queue:bulk", "rcpt:b.test"}) {
		t.Fatalf("after reopen: %v, %v", got, err)
	}
}
