package mailbox

import (
	"go/build"
	"strings"
	"testing"
)

// TestLeafPackage keeps mailbox a leaf: its non-test code imports no other
// mailgate package (STYLE.md, dependency direction).
func TestLeafPackage(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/mailgate/mailgate/") {
			t.Errorf("mailbox imports %s; it must stay a leaf", imp)
		}
	}
}
