package actors

import (
	"container/heap"
	"time"

	"github.com/mtad/mtad/messages"
)

// dueEntry says message id has a recipient due at at.
type dueEntry struct {
	at time.Time
	id messages.MsgID
}

// dueHeap orders entries by due time; owned by one queue actor.
type dueHeap struct{ h entries }

type entries []dueEntry

func (e entries) Len() int           { return len(e) }
func (e entries) Less(i, j int) bool { return e[i].at.Before(e[j].at) }
func (e entries) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *entries) Push(x any)        { *e = append(*e, x.(dueEntry)) }
func (e *entries) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

func (d *dueHeap) Len() int        { return len(d.h) }
func (d *dueHeap) push(e dueEntry) { heap.Push(&d.h, e) }
func (d *dueHeap) pop() dueEntry   { return heap.Pop(&d.h).(dueEntry) }
func (d *dueHeap) peek() dueEntry  { return d.h[0] }
