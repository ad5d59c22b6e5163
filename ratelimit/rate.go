package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadRate is returned by ParseRate for text that is not a rate.
var ErrBadRate = errors.New("bad rate")

// rateUnit returns the period named by the unit after the slash of a rate.
func rateUnit(u string) (time.Duration, bool) {
	switch u {
	case "s", "sec", "second":
		return time.Second, true
	case "m", "min", "minute":
		return time.Minute, true
	case "h", "hour":
		return time.Hour, true
	}
	return 0, false
}

// ParseRate parses "N/s", "N/m", "N/h" (also "N/sec", "N/min", "N/minute",
// "N/hour") into a Limit of N events per period with a burst of N. The empty
// string, "off", "0" and N = 0 are the Off limit. Surrounding spaces are ignored;
// the unit is case-insensitive.
func ParseRate(s string) (Limit, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || s == "off" || s == "0" {
		return Limit{}, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("%w %q: want N/s, N/m or N/h", ErrBadRate, s)
	}
	period, ok := rateUnit(strings.TrimSpace(unit))
	if !ok {
		return Limit{}, fmt.Errorf("%w %q: unit must be s, m or h", ErrBadRate, s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 0 {
		return Limit{}, fmt.Errorf("%w %q: count must be a whole number ≥ 0", ErrBadRate, s)
	}
	if n == 0 {
		return Limit{}, nil
	}
	return Limit{Events: n, Period: period}, nil
}

// ParseRates parses a comma-separated list of ParseRate limits ("10/s,
// 1000/h"): each holds, so a send must fit every window. Off entries are
// dropped; none at all is no limit.
func ParseRates(s string) ([]Limit, error) {
	var out []Limit
	for _, part := range strings.Split(s, ",") {
		l, err := ParseRate(part)
		if err != nil {
			return nil, err
		}
		if !l.Off() {
			out = append(out, l)
		}
	}
	return out, nil
}

// String formats l as ParseRate reads it ("5/s", "300/m", "2/h"), "off" for
// an Off limit, or "N/<duration>" for other periods.
func (l Limit) String() string {
	if l.Off() {
		return "off"
	}
	unit := l.Period.String()
	switch l.Period {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	}
	s := strconv.Itoa(l.Events) + "/" + unit
	if l.Burst > 0 && l.Burst != l.Events {
		s += " (burst " + strconv.Itoa(l.Burst) + ")"
	}
	return s
}

// burst is the number of events that may happen at once under l.
func (l Limit) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return l.Events
}
