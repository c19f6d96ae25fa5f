package messages

import (
	"fmt"
	"testing"
)

func TestMsgIDString(t *testing.T) {
	for _, id := range []MsgID{0, 1, 0xabc, 1<<64 - 1, 0x0123456789abcdef} {
		if got, want := id.String(), fmt.Sprintf("%016x", uint64(id)); got != want {
			t.Errorf("MsgID(%d).String() = %q, want %q", uint64(id), got, want)
		}
	}
}
