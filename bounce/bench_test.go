package bounce

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkParseCorpus measures classification throughput over the whole
// labelled corpus; it reports messages per second.
func BenchmarkParseCorpus(b *testing.B) {
	files, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.eml"))
	if err != nil || len(files) == 0 {
		b.Fatalf("corpus: %v", err)
	}
	raws := make([][]byte, len(files))
	var size int64
	for i, f := range files {
		if raws[i], err = os.ReadFile(f); err != nil {
			b.Fatal(err)
		}
		size += int64(len(raws[i]))
	}
	p := New(Limits{})
	b.SetBytes(size / int64(len(raws)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Parse(raws[i%len(raws)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
