package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// procStatusBytes returns a memory field of /proc/PID/status ("VmRSS",
// "VmHWM") in bytes.
func procStatusBytes(pid int, name string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("server memory: %w", err)
	}
	return parseStatusField(b, name)
}

// parseStatusField finds "name:   1234 kB" in a /proc/PID/status text.
func parseStatusField(status []byte, name string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), name+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("server memory: %s: %w", name, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("server memory: no %s in /proc status", name)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procCPUSeconds returns the user plus system CPU time process pid has used.
func procCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server cpu: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU sums utime and stime (fields 14 and 15) of a /proc/PID/stat
// line. The command name (field 2) is in parentheses and may hold spaces
// and parentheses, so fields are counted from the last ')'.
func parseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("server cpu: malformed /proc stat")
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("server cpu: short /proc stat")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("server cpu: malformed /proc stat times")
	}
	return float64(utime+stime) / clockTicks, nil
}

// machineTimes is the machine's CPU time by state since boot, in clock
// ticks summed over its CPUs, from the first line of /proc/stat.
type machineTimes struct {
	total, idle, steal uint64
}

// readMachineTimes reads /proc/stat; ok is false where there is none
// (outside Linux) or it cannot be parsed.
func readMachineTimes() (t machineTimes, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return t, false
	}
	return parseProcStat(b)
}

// parseProcStat parses the "cpu" line of /proc/stat: user, nice, system,
// idle, iowait, irq, softirq and steal ticks (guest time is already in
// user and nice, and is not added again).
func parseProcStat(b []byte) (t machineTimes, ok bool) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return t, false
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return t, false
		}
		v[i] = n
		t.total += n
	}
	t.idle, t.steal = v[3]+v[4], v[7]
	return t, true
}

// machineStats is how the machine's CPU time went between before and after.
func machineStats(before, after machineTimes) *MachineStats {
	if after.total <= before.total {
		return nil
	}
	total := float64(after.total - before.total)
	// iowait, counted as idle, may go backwards on some kernels.
	idle := min(max(float64(after.idle)-float64(before.idle), 0), total)
	steal := min(max(float64(after.steal)-float64(before.steal), 0), total-idle)
	return &MachineStats{
		BusyPercent:  100 * (total - idle - steal) / total,
		StealPercent: 100 * steal / total,
	}
}

// metricsRSS reads process_resident_memory_bytes from a Prometheus endpoint.
func metricsRSS(ctx context.Context, client *http.Client, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("server metrics: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("server metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("server metrics: %s: HTTP %d", url, resp.StatusCode)
	}
	v, err := parseMetric(io.LimitReader(resp.Body, 16<<20), "process_resident_memory_bytes")
	if err != nil {
		return 0, fmt.Errorf("server metrics: %s: %w", url, err)
	}
	return int64(v), nil
}

// parseMetric returns the value of an unlabelled sample in the Prometheus
// text format.
func parseMetric(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || !strings.HasPrefix(rest, " ") {
			continue // another metric, a longer name, a comment, or labels
		}
		fields := strings.Fields(rest) // value [timestamp]
		return strconv.ParseFloat(fields[0], 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s sample", name)
}
