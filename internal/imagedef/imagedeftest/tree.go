// Design: benchmark trees are generated, not stored, so their size is a parameter.

// Package imagedeftest writes generated image definition trees for
// benchmarks.
package imagedeftest

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteTree writes into dir a registry with images image files, each with four
// dimensions (arch x platform x hyperv_generation x flavor = 2 x 1 x 1 x 5 =
// 10 variants), an exclude rule, a when rule that matches half the variants,
// and a distro with two publish targets. It returns the root file. The
// imagedef benchmarks and `make bench` (suite matrix) use it.
func WriteTree(dir string, images int) (string, error) {
	var err error
	write := func(rel, content string) {
		if err != nil {
			return
		}
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err = os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return
		}
		err = os.WriteFile(p, []byte(content), 0o644)
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
	return filepath.Join(dir, "images.toml"), err
}
