package verp_test

import (
	"strings"
	"testing"

	"github.com/mailgate/mailgate/verp"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// is exactly the address the codec makes for the result.
func FuzzParse(f *testing.F) {
	c := verp.New(ring(f, 1), "bounces.example")
	good, err := c.Address(msgID, 3)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{good, strings.ToUpper(good), "b+", "", "b+00000000" + strings.Repeat("a", 51)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		id, pos, err := c.Parse(in)
		if err != nil {
			return
		}
		again, err := c.Address(id, pos)
		if err != nil {
			t.Fatalf("Address(%s, %d) after Parse: %v", id, pos, err)
		}
		local, _, _ := strings.Cut(again, "@")
		if !strings.Contains(strings.ToLower(in), strings.TrimPrefix(local, "b+")) {
			t.Fatalf("Parse accepted %q, which is not the token %s", in, local)
		}
	})
}
