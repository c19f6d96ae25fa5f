package maildir

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// deliveries counts the unique names made by this process, for the Q part
// of a name; it is shared by every Store.
var deliveries atomic.Uint64

// hostEscaper writes a host name the way the Maildir spec asks: '/' as
// \057 and ':' as \072, since both would break a file name.
var hostEscaper = strings.NewReplacer("/", `\057`, ":", `\072`)

// uniqueName returns "<seconds>.M<microseconds>P<pid>Q<counter>.<host>,S=<size>".
// Within one process the counter makes it unique; across processes the pid
// does, and across hosts the host name.
func uniqueName(now time.Time, host string, size int64) string {
	return fmt.Sprintf("%d.M%dP%dQ%d.%s,S=%d", now.Unix(), now.Nanosecond()/1000,
		os.Getpid(), deliveries.Add(1), hostEscaper.Replace(host), size)
}
