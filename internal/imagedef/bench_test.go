package imagedef

import (
	"fmt"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/imagedef/imagedeftest"
)

func benchTree(b *testing.B, images int) string {
	b.Helper()
	root, err := imagedeftest.WriteTree(b.TempDir(), images)
	if err != nil {
		b.Fatal(err)
	}
	return root
}

// reportPerVariant adds wall and CPU time per variant (CPU time includes the
// garbage collector's background work).
func reportPerVariant(b *testing.B, n int, cpu time.Duration) {
	per := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/variant")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/per, "cpu-ns/variant")
	}
}

var benchSizes = []int{100, 1000, 10000} // variants; 10 per image file

// BenchmarkExpand measures Expand alone on a loaded tree; ns/variant is the
// time per variant.
func BenchmarkExpand(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("variants=%d", n), func(b *testing.B) {
			tr, _, err := Load(benchTree(b, n/10))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for b.Loop() {
				vs, _, err := Expand(tr, Options{})
				if err != nil || len(vs) != n {
					b.Fatalf("got %d variants, %v", len(vs), err)
				}
			}
			reportPerVariant(b, n, processCPU()-cpu)
		})
	}
}

// BenchmarkLoadAndExpand measures what the datasource does: read and check
// the image files (n/10 of them), then expand.
func BenchmarkLoadAndExpand(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("variants=%d", n), func(b *testing.B) {
			root := benchTree(b, n/10)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for b.Loop() {
				tr, _, err := Load(root)
				if err != nil {
					b.Fatal(err)
				}
				vs, _, err := Expand(tr, Options{})
				if err != nil || len(vs) != n {
					b.Fatalf("got %d variants, %v", len(vs), err)
				}
			}
			reportPerVariant(b, n, processCPU()-cpu)
		})
	}
}
