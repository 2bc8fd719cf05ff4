package imagedef

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchTree writes a registry with images image files, each with four
// dimensions (arch x platform x hyperv_generation x flavor = 2 x 1 x 1 x 5 =
// 10 variants), an exclude rule, a when rule that matches half the variants,
// and a distro with two publish targets. It returns the root file.
func benchTree(b *testing.B, images int) string {
	b.Helper()
	dir := b.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write("images.toml", "includes = [\"distro.toml\", \"**/*.image.toml\"]\n[project]\ndefault-distro = { name = \"azl\" }\n")
	write("distro.toml", `[distros.azl]
default-version = "4.0"
[distros.azl.versions.'4.0']
release-ver = "4.0"
outputs.image-stores = ["acg", "acr"]
[[resources.acg]]
publish-labels = ["vm"]
interface-type = "azure-compute-gallery"
resource-urn = "*"
images = [{ name = "x64", arch = "x86_64" }, { name = "arm64", arch = "aarch64" }]
[[resources.acr]]
publish-labels = ["container"]
interface-type = "oci-registry"
images = [{ name = "base", arch = "x86_64" }, { name = "base", arch = "aarch64" }]
`)
	for i := range images {
		name := fmt.Sprintf("img%04d", i)
		write(fmt.Sprintf("images/%s/%s.kiwi", name, name), "<image/>\n")
		write(fmt.Sprintf("images/%s/%s.image.toml", name, name), fmt.Sprintf(`[images.%[1]s]
description = "Image %[1]s"
definition = { type = "kiwi", path = "%[1]s.kiwi", profile = "default" }
capabilities = { machine-bootable = true, systemd = true }
publish = { labels = ["vm"], channels = ["stable"] }

[images.%[1]s.delivery.marketplace]
publisher = "P"
offer = "O"
sku_prefix = "%[1]s"
version = "*"

[images.%[1]s.delivery.shared_gallery]
image_gallery = "*"
image_version = "*"
capability = { accelerated_networking = true, security_type = "TrustedLaunch" }

[images.%[1]s.variants]
architectures = ["x86_64", "aarch64"]
platforms = ["virtualization"]
hyperv_generations = ["gen2"]
flavor = ["a", "b", "c", "d", "e"]

[[images.%[1]s.variants.exclude]]
arch = "aarch64"
hyperv_generation = "gen1"

[[images.%[1]s.variants.when]]
match = { arch = "aarch64" }
set.definition.profile = "arm"
set.delivery.marketplace.sku_prefix = "%[1]s-arm64"
`, name))
	}
	return filepath.Join(dir, "images.toml")
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
