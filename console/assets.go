package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

// assetFS holds the console's stylesheet and script and, under vendor/,
// the third-party assets copied by scripts/vendor-assets.sh (pinned in
// package-lock.json, each with its licence; vendor/MANIFEST lists them).
//
//go:embed assets
var assetFS embed.FS

// assetServer serves assetFS under /console/assets/ with a strong ETag
// (their SHA-256, computed once), so a browser revalidates cheaply.
type assetServer struct {
	files map[string]asset
}

type asset struct {
	body []byte
	etag string
}

func newAssetServer() (*assetServer, error) {
	a := &assetServer{files: map[string]asset{}}
	err := fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assetFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		a.files[p[len("assets/"):]] = asset{body: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	return a, err
}

func (a *assetServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := a.files[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	ct := mime.TypeByExtension(path.Ext(r.PathValue("file")))
	if ct == "" {
		ct = "text/plain; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("ETag", f.etag)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
