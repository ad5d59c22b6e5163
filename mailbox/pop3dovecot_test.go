package mailbox

import (
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailgate/mailgate/internal/dovecot"
)

// uidlPattern is Dovecot's pop3_uidl_format %08Xu%08Xv.
var uidlPattern = regexp.MustCompile(`^[0-9a-fA-F]{16}$`)

// TestPOP3Dovecot runs the poller's cycle over STLS and POP3S against a
// real Dovecot: Fetch and skip by UIDL with exact bytes (dot-unstuffed),
// Done keeping messages with delete=false and removing them with
// delete=true.
func TestPOP3Dovecot(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"pop3", "pop3s"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			s := dovecot.Start(t)
			raws := deliverFixtures(t, s)
			ctx := testCtx(t)

			keep := openDovecot(t, s, scheme, "", "delete=false", Config{})
			first, err := keep.Fetch(ctx, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkPOP3Messages(t, first, raws[:2])
			rest, err := keep.Fetch(ctx, 10, skipSet(ids(first)...))
			if err != nil {
				t.Fatal(err)
			}
			checkPOP3Messages(t, rest, raws[2:])
			all := append(ids(first), ids(rest)...)
			if err := keep.Done(ctx, all); err != nil {
				t.Fatal(err)
			}
			if err := keep.Close(); err != nil {
				t.Fatal(err)
			}
			if got := s.Count(t, "INBOX"); got != 3 {
				t.Fatalf("Count(INBOX) after Done with delete=false = %d, want 3", got)
			}

			del := openDovecot(t, s, scheme, "", "delete=true", Config{})
			again, err := del.Fetch(ctx, 10, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(all, ids(again)); diff != "" {
				t.Fatalf("UIDLs changed between sessions (-want +got):\n%s", diff)
			}
			if err := del.Done(ctx, all[:2]); err != nil {
				t.Fatal(err)
			}
			if got := s.Count(t, "INBOX"); got != 1 {
				t.Errorf("Count(INBOX) after Done with delete=true = %d, want 1", got)
			}
			last, err := del.Fetch(ctx, 10, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkPOP3Messages(t, last, raws[2:])
		})
	}
}

// checkPOP3Messages compares bodies and checks the ids look like UIDLs.
func checkPOP3Messages(t *testing.T, got []Message, want [][]byte) {
	t.Helper()
	var bodies [][]byte
	for _, m := range got {
		if !uidlPattern.MatchString(m.ID) {
			t.Errorf("id %q is not a Dovecot UIDL", m.ID)
		}
		bodies = append(bodies, m.Raw)
	}
	if diff := cmp.Diff(want, bodies); diff != "" {
		t.Errorf("bodies (-want +got):\n%s", diff)
	}
}
