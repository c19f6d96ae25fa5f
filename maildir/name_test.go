package maildir

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestUniqueName(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	pid := strconv.Itoa(os.Getpid())
	re := regexp.MustCompile(`^1700000000\.M123456P` + pid + `Q(\d+)\.mx\\0571\\072test,S=42$`)
	a, b := uniqueName(now, testHost, 42), uniqueName(now, testHost, 42)
	ma, mb := re.FindStringSubmatch(a), re.FindStringSubmatch(b)
	if ma == nil || mb == nil {
		t.Fatalf("names %q, %q do not match %v", a, b, re)
	}
	qa, _ := strconv.Atoi(ma[1])
	qb, _ := strconv.Atoi(mb[1])
	if qb <= qa {
		t.Errorf("counter did not advance: %q then %q", a, b)
	}
}

// The delivered file carries that name, its real size and mode 0600.
func TestDeliveredFile(t *testing.T) {
	_, s := fixture(t)
	if _, err := s.Deliver(context.Background(), "", addrs("alice@example.com"), strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.Root, "example.com/alice/new")
	files := names(t, dir)
	if len(files) != 1 {
		t.Fatalf("new/ holds %v", files)
	}
	fi, err := os.Stat(filepath.Join(dir, files[0]))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\d+\.M\d{1,6}P` + strconv.Itoa(os.Getpid()) + `Q\d+\.mx\\0571\\072test,S=(\d+)$`)
	m := re.FindStringSubmatch(files[0])
	if m == nil || m[1] != strconv.FormatInt(fi.Size(), 10) {
		t.Errorf("name %q: want the unique-name form with S=%d", files[0], fi.Size())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}
