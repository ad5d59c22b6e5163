package console_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVendoredAssets checks console/assets/vendor against the versions
// pinned in package-lock.json and its MANIFEST (written by
// scripts/vendor-assets.sh): each package at its locked version, each file
// as listed, each package with its licence.
func TestVendoredAssets(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("assets", "vendor", "MANIFEST"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	licensed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		var pkg, version, file, sum string
		fields := strings.Fields(sc.Text())
		if len(fields) != 4 {
			t.Fatalf("MANIFEST line %q: want package version file sha256", sc.Text())
		}
		pkg, version, file, sum = fields[0], fields[1], fields[2], fields[3]
		if locked := lock.Packages["node_modules/"+pkg].Version; locked != version {
			t.Errorf("%s: vendored %s, package-lock.json pins %q: run scripts/vendor-assets.sh", pkg, version, locked)
		}
		content, err := os.ReadFile(filepath.Join("assets", "vendor", pkg, file))
		if err != nil {
			t.Errorf("%s/%s: %v", pkg, file, err)
			continue
		}
		if got := sha256.Sum256(content); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s/%s differs from the MANIFEST: run scripts/vendor-assets.sh", pkg, file)
		}
		licensed[pkg] = licensed[pkg] || file == "LICENSE"
	}
	for _, pkg := range []string{"htmx.org", "uplot"} {
		if !licensed[pkg] {
			t.Errorf("%s is vendored without its LICENSE", pkg)
		}
	}
}
