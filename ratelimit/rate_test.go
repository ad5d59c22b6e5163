package ratelimit

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    Limit
		wantErr bool
	}{
		{in: "", want: Limit{}},
		{in: "off", want: Limit{}},
		{in: "0/s", want: Limit{}},
		{in: "0", want: Limit{}},
		{in: "5/s", want: Limit{Events: 5, Period: time.Second}},
		{in: " 12 / sec ", want: Limit{Events: 12, Period: time.Second}},
		{in: "300/m", want: Limit{Events: 300, Period: time.Minute}},
		{in: "300/min", want: Limit{Events: 300, Period: time.Minute}},
		{in: "300/MINUTE", want: Limit{Events: 300, Period: time.Minute}},
		{in: "5000/h", want: Limit{Events: 5000, Period: time.Hour}},
		{in: "5000/hour", want: Limit{Events: 5000, Period: time.Hour}},
		{in: "5", wantErr: true},
		{in: "5/d", wantErr: true},
		{in: "-1/s", wantErr: true},
		{in: "1.5/s", wantErr: true},
		{in: "x/s", wantErr: true},
		{in: "/s", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadRate) {
					t.Fatalf("ParseRate(%q) error = %v, want ErrBadRate", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRate(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseRate(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestLimitString(t *testing.T) {
	tests := []struct {
		lim  Limit
		want string
	}{
		{Limit{}, "off"},
		{PerSecond(5), "5/s"},
		{Limit{Events: 300, Period: time.Minute}, "300/m"},
		{Limit{Events: 2, Period: time.Hour, Burst: 4}, "2/h (burst 4)"},
		{Limit{Events: 7, Period: 10 * time.Second}, "7/10s"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.lim.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseRates(t *testing.T) {
	tests := []struct {
		in      string
		want    []Limit
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "off", want: nil},
		{in: "10/s", want: []Limit{{Events: 10, Period: time.Second}}},
		{in: "10/s, 1000/h", want: []Limit{{Events: 10, Period: time.Second}, {Events: 1000, Period: time.Hour}}},
		{in: "10/s,off,0/m", want: []Limit{{Events: 10, Period: time.Second}}},
		{in: "10/s,5/d", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRates(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadRate) {
					t.Fatalf("ParseRates(%q) error = %v, want ErrBadRate", tt.in, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseRates(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}
