package loadtest

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestProcParsers(t *testing.T) {
	status := []byte("Name:\twspush\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n")
	if v, err := parseStatusField(status, "VmRSS"); err != nil || v != 1024*1024 {
		t.Fatalf("VmRSS = %d, %v", v, err)
	}
	if _, err := parseStatusField(status, "VmSwap"); err == nil {
		t.Fatal("a missing field was found")
	}
	stat := []byte("4242 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 150 250 0 0 20 0 4 0 100 0 0\n")
	if v, err := parseStatCPU(stat); err != nil || v != 4.0 {
		t.Fatalf("cpu = %v, %v; want 4 s", v, err)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1 2")); err == nil {
		t.Fatal("a short stat line was accepted")
	}
	rss, err := procStatusBytes(os.Getpid(), "VmRSS")
	if err != nil || rss <= 0 {
		t.Fatalf("own VmRSS = %d, %v", rss, err)
	}
	if _, err := procCPUSeconds(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestParseMetric(t *testing.T) {
	text := `# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes_total{x="y"} 1
process_resident_memory_bytes{instance="a"} 2
process_resident_memory_bytes 1.2345e+07
`
	v, err := parseMetric(strings.NewReader(text), "process_resident_memory_bytes")
	if err != nil || v != 12345000 {
		t.Fatalf("got %v, %v", v, err)
	}
	if _, err := parseMetric(strings.NewReader("go_goroutines 5\n"), "process_resident_memory_bytes"); err == nil {
		t.Fatal("a missing metric was found")
	}
}

func TestMachineStats(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	before, ok1 := parseProcStat([]byte("cpu  100 0 50 800 10 0 20 20 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	after, ok2 := parseProcStat([]byte("cpu  160 0 80 1060 20 0 30 50 9 0\n"))
	if !ok1 || !ok2 {
		t.Fatal("a well-formed /proc/stat was refused")
	}
	// Over the interval: 60+30+10 busy, 260+10 idle, 30 steal, of 400.
	m := machineStats(before, after)
	if m == nil || m.BusyPercent != 25 || m.StealPercent != 7.5 {
		t.Fatalf("machine stats %+v, want busy 25%%, steal 7.5%%", m)
	}
	if machineStats(after, before) != nil || machineStats(after, after) != nil {
		t.Error("stats over an empty or backward interval")
	}
	// iowait going backwards (it may) does not make idle time negative.
	// Over the interval: idle +0, iowait -5, 125 in all, 30 of it steal.
	back, _ := parseProcStat([]byte("cpu  160 0 80 800 5 0 30 50 9 0\n"))
	if m := machineStats(before, back); m == nil || m.BusyPercent != 76 || m.StealPercent != 24 {
		t.Errorf("stats with iowait going back: %+v", m)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 3", "cpu 1 2 3 4 5 6 7 x 9"} {
		if _, ok := parseProcStat([]byte(bad)); ok {
			t.Errorf("parseProcStat(%q) accepted it", bad)
		}
	}
	if _, err := os.Stat("/proc/stat"); err == nil {
		if _, ok := readMachineTimes(); !ok {
			t.Error("this machine's /proc/stat was not read")
		}
	}

	// Steal over the threshold makes a warning; under it, none.
	warned := func(steal float64) bool {
		r := &Report{Publish: &PublishStats{Issued: 10}, Delivery: &DeliveryStats{}, Machine: &MachineStats{StealPercent: steal}}
		for _, w := range fanoutWarnings(r, FanoutConfig{Rate: 1, Duration: 10 * time.Second}) {
			if strings.Contains(w, "steal") {
				return true
			}
		}
		return false
	}
	if !warned(stealWarning) || warned(stealWarning/2) {
		t.Errorf("steal warning at %v%%: %v, at %v%%: %v", stealWarning, warned(stealWarning), stealWarning/2, warned(stealWarning/2))
	}
}
