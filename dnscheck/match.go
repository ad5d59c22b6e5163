package dnscheck

import (
	"strings"
	"unicode"
)

// dkimMatches reports whether the published record carries every tag of
// the expected one with an equal value. Tag lists are parsed as in RFC
// 6376 §3.2: "name=value" separated by ";", whitespace around either
// ignored; the values compared here (v, k, p, …) carry no meaningful
// whitespace, and a base64 p= may be split by it (§3.6.1), so all of it
// is removed. Tag names are case-sensitive (§3.2).
func dkimMatches(expected, published string) bool {
	want, ok1 := tagList(expected)
	got, ok2 := tagList(published)
	if !ok1 || !ok2 || len(want) == 0 {
		return false
	}
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			return false
		}
	}
	return true
}

// tagList parses a tag list; a duplicate tag makes it invalid (§3.2).
func tagList(s string) (map[string]string, bool) {
	out := map[string]string{}
	for part := range strings.SplitSeq(s, ";") {
		part = stripSpace(part)
		if part == "" {
			continue // a trailing ";" is allowed
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			return nil, false
		}
		if _, dup := out[name]; dup {
			return nil, false
		}
		out[name] = value
	}
	return out, true
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

// hasVersion reports whether a TXT record starts with the version tag v
// ("v=spf1", "v=DMARC1"), followed by its end, a space or a ";".
func hasVersion(record, v string) bool {
	record = strings.TrimSpace(record)
	if len(record) < len(v) || !strings.EqualFold(record[:len(v)], v) {
		return false
	}
	rest := record[len(v):]
	return rest == "" || rest[0] == ' ' || rest[0] == ';' || rest[0] == '\t'
}

// spfMatches reports whether exactly one SPF record is published (RFC
// 7208 §4.5) and it holds every mechanism of the expected record except
// "all" (the customer picks the policy), a "+" qualifier being the default
// (§4.6.2). Mechanisms compare case-insensitively (§4.6.1).
func spfMatches(expected string, found []string) bool {
	var spf []string
	for _, f := range found {
		if hasVersion(f, "v=spf1") {
			spf = append(spf, f)
		}
	}
	if len(spf) != 1 {
		return false
	}
	have := map[string]bool{}
	for _, term := range spfTerms(spf[0]) {
		have[spfTerm(term)] = true
	}
	wanted := 0
	for _, term := range spfTerms(expected) {
		t := spfTerm(term)
		if strings.TrimLeft(t, "~-?") == "all" {
			continue
		}
		wanted++
		if !have[t] {
			return false
		}
	}
	return wanted > 0
}

// spfTerms are the terms after the version of an SPF record.
func spfTerms(record string) []string {
	f := strings.Fields(record)
	if len(f) == 0 {
		return nil
	}
	return f[1:]
}

func spfTerm(t string) string { return strings.TrimPrefix(strings.ToLower(t), "+") }
