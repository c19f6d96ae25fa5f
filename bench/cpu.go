package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ, 100
// on every Linux architecture Go supports.
const userHZ = 100

// selfCPU is the harness's own CPU time so far (user and system, every
// thread): the injector and the sink.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpu is mtad's CPU time so far (user and system, every thread).
func (d *daemon) cpu() (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(stat)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat text. The command name, field 2, is in parentheses and
// may hold spaces, so the fields are counted after its closing one.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no command name")
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: utime/stime %q: %v", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// cpuMeter measures the CPU the harness and, when there is one, mtad
// spend between start and stop.
type cpuMeter struct {
	d          *daemon // nil: no mtad, or its CPU could not be read at start
	self, mtad time.Duration
}

func startCPU(d *daemon) *cpuMeter {
	m := &cpuMeter{self: selfCPU()}
	if d != nil {
		if t, err := d.cpu(); err == nil {
			m.d, m.mtad = d, t
		}
	}
	return m
}

// stop records the CPU spent since start in l.
func (m *cpuMeter) stop(l *ledger) {
	l.harnessCPU.Store(int64(selfCPU() - m.self))
	if m.d == nil {
		return
	}
	if now, err := m.d.cpu(); err == nil {
		l.mtadCPU.Store(int64(now - m.mtad))
	}
}
