package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"
)

// sample is one timed run of a command in its own process.
type sample struct {
	wall   time.Duration
	op     time.Duration // the operation alone, as timed inside our child processes
	maxRSS int64         // bytes
	// cpu is the user + system time of the child and the descendants it
	// waited for (wait4's rusage).
	cpu time.Duration
	// fields are other "name: nanoseconds" lines a child printed.
	fields map[string]time.Duration
}

// runOnce runs argv, returning wall time and the child's peak RSS.
//
// The peak is VmHWM from /proc/PID/status, polled while the child runs
// (and, for bench/child, printed by the child itself as it ends), not
// rusage's ru_maxrss: Linux carries the parent's resident size into a
// child's ru_maxrss at exec, which would report this driver's memory for
// every contender. Without poll, only the child's own report counts (for
// bench/child, which prints it): a poller waking every 2 ms takes time from
// a child that keeps both of this machine's 2 CPUs busy.
func runOnce(argv []string, poll bool) (sample, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	done := make(chan struct{})
	peak := make(chan int64)
	go func() {
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		var polled int64
		if !poll {
			<-done
			peak <- 0
			return
		}
		for {
			polled = max(polled, vmHWM(status))
			select {
			case <-done:
				peak <- polled
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	wall := time.Since(start)
	close(done)
	polled := <-peak
	if err != nil {
		return sample{}, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, stderr.String())
	}
	smp := sample{wall: wall, maxRSS: polled, fields: map[string]time.Duration{}, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	for _, line := range strings.Split(stdout.String(), "\n") {
		name, val, ok := strings.Cut(line, ": ")
		var ns int64
		if _, err := fmt.Sscan(val, &ns); !ok || err != nil {
			continue
		}
		switch name {
		case "op-ns":
			smp.op = time.Duration(ns)
		case "hwm-bytes":
			smp.maxRSS = max(smp.maxRSS, ns)
		default:
			smp.fields[name] = time.Duration(ns)
		}
	}
	return smp, nil
}

// contender is one way of doing the job.
type contender struct {
	name    string
	argv    []string
	prepare func() error // untimed, before every run (e.g. fresh input copy)
	cleanup func() error // untimed, after every run
	// ownPeak: the command is bench/child, which prints its peak memory
	// itself; its memory is not polled while it runs.
	ownPeak bool
}

type result struct {
	name    string
	argv    []string
	samples []sample
}

func (r result) median() time.Duration {
	return r.medianBy(func(s sample) time.Duration { return s.wall })
}

// medianBy is the median of one duration of every run.
func (r result) medianBy(f func(sample) time.Duration) time.Duration {
	ws := make([]time.Duration, len(r.samples))
	for i, s := range r.samples {
		ws[i] = f(s)
	}
	return median(ws)
}

func median(ds []time.Duration) time.Duration {
	ds = append([]time.Duration(nil), ds...)
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// medianOp is the median of the in-process operation times.
func (r result) medianOp() time.Duration {
	return r.medianBy(func(s sample) time.Duration { return s.op })
}

// medianCPU is the median of the runs' CPU times.
func (r result) medianCPU() time.Duration {
	return r.medianBy(func(s sample) time.Duration { return s.cpu })
}

// procCPU is the user + system time a running process has used so far,
// from /proc/PID/stat (in clock ticks of 10 ms).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ut, st int64
	if _, err := fmt.Sscan(f[11]+" "+f[12], &ut, &st); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %v", pid, err)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

func (r result) peakRSS() int64 {
	var m int64
	for _, s := range r.samples {
		m = max(m, s.maxRSS)
	}
	return m
}

// compare runs the contenders n times each, interleaved, so that a busy
// moment on the machine hits all of them alike.
func compare(n int, cs []contender) ([]result, error) {
	res := make([]result, len(cs))
	for i, c := range cs {
		res[i] = result{name: c.name, argv: c.argv}
	}
	for round := 0; round < n; round++ {
		for i, c := range cs {
			if c.prepare != nil {
				if err := c.prepare(); err != nil {
					return nil, err
				}
			}
			dropCaches()
			s, err := runOnce(c.argv, !c.ownPeak)
			if err != nil {
				return nil, err
			}
			res[i].samples = append(res[i].samples, s)
			if c.cleanup != nil {
				if err := c.cleanup(); err != nil {
					return nil, err
				}
			}
		}
	}
	return res, nil
}

// dropCaches writes dirty pages back so one run's writeback does not land
// on the next; the input itself stays cached for every contender alike.
func dropCaches() { syscall.Sync() }

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtMiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// machine describes where the numbers come from.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	var fs syscall.Statfs_t
	kind := ""
	if syscall.Statfs(".", &fs) == nil {
		switch fs.Type {
		case 0xEF53:
			kind = ", ext4 scratch"
		case 0x58465342:
			kind = ", xfs scratch"
		case 0x01021994:
			kind = ", tmpfs scratch"
		}
	}
	return fmt.Sprintf("%s, %d CPUs%s, %s", cpu, numCPU(), kind, time.Now().UTC().Format("2006-01-02"))
}

// vmHWM reads a process's peak resident set size in bytes (0 if gone).
func vmHWM(statusPath string) int64 {
	b, err := os.ReadFile(statusPath)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb * 1024
		}
	}
	return 0
}
