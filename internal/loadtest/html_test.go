package loadtest

import "testing"

func TestNiceMax(t *testing.T) {
	tests := map[float64]float64{0: 1, 1: 1, 24500: 30000, 25000: 30000, 0.7: 0.8, 101: 120, 399: 400, 9999: 10000}
	for v, want := range tests {
		if got := niceMax(v); got < want*0.9999 || got > want*1.0001 {
			t.Errorf("niceMax(%v) = %v, want %v", v, got, want)
		}
	}
}
