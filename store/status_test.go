package store

import "testing"

func TestSummarizeStatus(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"empty", nil, StatusQueued},
		{"one queued", []string{StatusQueued}, StatusQueued},
		{"queued beats sending", []string{StatusSending, StatusQueued}, StatusQueued},
		{"scheduled beats deferred", []string{StatusDeferred, StatusScheduled, StatusSent}, StatusScheduled},
		{"sending beats deferred", []string{StatusDeferred, StatusSending}, StatusSending},
		{"deferred with finals", []string{StatusSent, StatusDeferred, StatusFailed}, StatusDeferred},
		{"all sent", []string{StatusSent, StatusSent}, StatusSent},
		{"all suppressed", []string{StatusSuppressed}, StatusSuppressed},
		{"mixed finals", []string{StatusSent, StatusBounced}, StatusPartial},
		{"cancelled and suppressed", []string{StatusCancelled, StatusSuppressed}, StatusPartial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SummarizeStatus(tt.in); got != tt.want {
				t.Errorf("SummarizeStatus(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
