package bounce

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// probe is one row of a probe directory's labels.tsv: what one message of
// the probe set must yield for one recipient (see testdata/README.md).
type probe struct {
	eml, family, kind, recipient, status, hard, reason, open string
}

// readProbes reads the labels.tsv of one probe directory in file order.
func readProbes(t *testing.T, dir string) []probe {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "labels.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []probe
	sc := bufio.NewScanner(f)
	for first := true; sc.Scan(); first = false {
		c := strings.Split(sc.Text(), "\t")
		if first || len(c) < 7 {
			continue
		}
		p := probe{eml: c[0], family: c[1], kind: c[2], recipient: c[3], status: c[4], hard: c[5], reason: c[6]}
		if len(c) > 7 {
			p.open = c[7]
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// probeKind maps the probe labels' kinds onto ours: unlike the corpus
// labels, a delay notice must be told from a failure.
var probeKind = map[string]string{
	"bounce": KindBounce, "delayed": KindDelayed, "autoreply": KindAutoReply,
	"delivered": KindDelivered, "complaint": KindComplaint, "unknown": KindUnknown, "reply": KindReply,
}

// probeBatches are the probe directories, each scored on its own: a
// batch's first-seen score (before any rule was fixed from it) is the
// estimate of accuracy on unseen mail, so batches are not pooled.
var probeBatches = []string{"probes", "probes2", "probes3", "probes4", "probes5", "probes6", "probes7"}

// TestProbes classifies the probe messages, written for this test from
// each MTA family's documented or observable notice format (none of them
// is in the labelled corpus the built-in phrases were read from), prints
// their scores per family and batch, and fails on any row that no longer
// yields what its label says. A row whose last column ("open") explains
// why it is not met yet is reported, not failed.
func TestProbes(t *testing.T) {
	for _, batch := range probeBatches {
		t.Run(batch, func(t *testing.T) { testProbeBatch(t, filepath.Join("testdata", batch)) })
	}
}

// testProbeBatch checks and scores the probes of one directory.
func testProbeBatch(t *testing.T, dir string) {
	p := New(Limits{})
	tl := tally{}
	reports := map[string]*Report{}
	for _, pr := range readProbes(t, dir) {
		rep, ok := reports[pr.eml]
		if !ok {
			raw, err := os.ReadFile(filepath.Join(dir, pr.eml))
			if err != nil {
				t.Fatal(err)
			}
			if rep, err = p.Parse(raw); err != nil {
				t.Fatalf("%s: %v", pr.eml, err)
			}
			reports[pr.eml] = rep
			// Mail arrives with CRLF line ends; the files have LF.
			crlf, err := p.Parse(bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n")))
			if err != nil {
				t.Fatalf("%s with CRLF: %v", pr.eml, err)
			}
			if a, b := resultsSummary(rep), resultsSummary(crlf); a != b {
				t.Errorf("%s: LF and CRLF differ:\n%s\n%s", pr.eml, a, b)
			}
		}
		var miss []string
		check := func(col string, ok bool, format string, args ...any) {
			tl.add(pr.family, col, ok)
			if !ok {
				miss = append(miss, col+": "+fmt.Sprintf(format, args...))
			}
		}
		check("kind", rep.Kind == probeKind[pr.kind], "%s want %s", rep.Kind, pr.kind)
		if pr.recipient != "" {
			got, n := &Result{}, 0
			for i := range rep.Results {
				if strings.EqualFold(rep.Results[i].Recipient, pr.recipient) {
					if n++; n == 1 {
						got = &rep.Results[i]
					}
				}
			}
			var rcpts []string
			for _, x := range rep.Results {
				rcpts = append(rcpts, x.Recipient)
			}
			check("recipient", n == 1, "%q found %d times among %q", pr.recipient, n, rcpts)
			check("status_class", statusClass(got.Status) == pr.status[0], "%q want %q", got.Status, pr.status)
			if !isVague(pr.status) {
				check("status", got.Status == pr.status, "%q want %q", got.Status, pr.status)
			}
			check("hard", fmt.Sprint(got.Hard) == pr.hard, "%v want %s (%s by %s)", got.Hard, pr.hard, got.Reason, got.Rule)
			if pr.reason != "" {
				check("reason", got.Reason == pr.reason, "%s want %s (rule %s, diagnostic %q)", got.Reason, pr.reason, got.Rule, got.Diagnostic)
			}
		}
		for _, m := range miss {
			if pr.open != "" {
				t.Logf("OPEN %s %s: %s (%s)", pr.eml, pr.recipient, m, pr.open)
			} else {
				t.Errorf("%s %s: %s", pr.eml, pr.recipient, m)
			}
		}
	}
	logProbeTable(t, tl)
}

// logProbeTable prints the probe scores per family and overall.
func logProbeTable(t *testing.T, tl tally) {
	families := make([]string, 0, len(tl))
	for m := range tl {
		if m != "ALL" {
			families = append(families, m)
		}
	}
	sort.Strings(families)
	cols := []string{"kind", "recipient", "status_class", "status", "hard", "reason"}
	t.Logf("PROBE %-16s %s", "family", strings.Join(cols, " / "))
	for _, m := range append(families, "ALL") {
		var b strings.Builder
		for _, col := range cols {
			c, ok := tl[m][col]
			if !ok || c[1] == 0 {
				fmt.Fprintf(&b, " %13s", "-")
				continue
			}
			fmt.Fprintf(&b, " %5.1f%% %3d/%-3d", 100*float64(c[0])/float64(c[1]), c[0], c[1])
		}
		t.Logf("PROBE %-16s%s", m, b.String())
	}
}

// resultsSummary is what a report says of each recipient, for comparing
// two reports.
func resultsSummary(r *Report) string {
	var b strings.Builder
	fmt.Fprint(&b, r.Kind)
	for _, x := range r.Results {
		fmt.Fprintf(&b, " | %s %s %s %s %v", x.Recipient, x.Action, x.Status, x.Reason, x.Hard)
	}
	return b.String()
}
