package loadtest

import (
	"os"
	"strings"
	"testing"
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
