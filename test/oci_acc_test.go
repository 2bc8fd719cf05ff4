package test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/osimage/packer-plugin-osimage/builder/disk/disktest"
	"github.com/osimage/packer-plugin-osimage/internal/ociimage"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

// Four variants (amd64, arm64 x virtualization, baremetal) of one source
// image through osimage-disk (which records every file's sha256), each
// build's osimage-oci merging its entry into the shared indexes.
const ociTemplate = acc.RequiredPlugins + `
variable "src" { type = string }
variable "sum" { type = string }
variable "out" { type = string }
variable "repo" { type = string }

locals {
  variants = {
    for v in [["x86_64", "virtualization"], ["x86_64", "baremetal"], ["aarch64", "virtualization"], ["aarch64", "baremetal"]] :
    "acc-${v[0]}-${v[1]}" => { key = "acc-${v[0]}-${v[1]}", image = "acc", arch = v[0], platform = v[1], distro_version = "7.1" }
  }
}

source "osimage-disk" "v" {
  source_image          = var.src
  source_image_checksum = var.sum
  boot_files            = "always"
}

build {
  dynamic "source" {
    for_each = local.variants
    labels   = ["osimage-disk.v"]
    content {
      name             = source.key
      variant          = jsonencode(source.value)
      output_directory = "${var.out}/${source.key}"
    }
  }
  post-processor "osimage-oci" {
    repository      = var.repo
    combined_tag    = "{{ .Version }}"
    source_revision = "0123abc"
  }
}
`

var indexLine = regexp.MustCompile(`Index (\S+):(\S+)@(sha256:[0-9a-f]{64}) \((\d+) entries, (updated|unchanged)\)`)
var sentLine = regexp.MustCompile(`Sent (\d+) blobs, (\d+) bytes`)

func TestParallelPackerBuildsMergeFourVariantsIntoTheIndexes(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "debugfs", "e2fsprogs")
	reg := testsvc.StartRegistry(t)
	dir := t.TempDir()
	// An MBR disk: its Linux root partition type names no architecture, so
	// the same image serves the x86_64 and aarch64 variants.
	d := disktest.Make(t, dir, "src.raw", disktest.Options{MBR: true})
	repo := reg.Host + "/os/acc"
	acc.WriteTemplate(t, dir, "oci.pkr.hcl", ociTemplate)
	vars := []string{"-var", "src=" + d.Path, "-var", "sum=sha256:" + fileSHA256(t, d.Path), "-var", "out=" + filepath.Join(dir, "out"), "-var", "repo=" + repo}
	// Each build runs in its own plugin process, side by side; the lock
	// directory is the system's, as for users.
	envs := []string{"SOURCE_DATE_EPOCH=1764460800", "TMPDIR=" + t.TempDir()}
	env.MustRun(t, dir, envs, append(append([]string{"validate"}, vars...), ".")...)
	r := env.MustRun(t, dir, envs, append(append([]string{"build", "-parallel-builds=4"}, vars...), ".")...)

	want := map[string][]string{
		"7.1":                {"virtualization/amd64", "virtualization/arm64", "baremetal/amd64", "baremetal/arm64"},
		"7.1-virtualization": {"virtualization/amd64", "virtualization/arm64"},
		"7.1-baremetal":      {"baremetal/amd64", "baremetal/arm64"},
	}
	digests := map[string]string{}
	for tag, entries := range want {
		ref, _ := name.ParseReference(repo + ":" + tag)
		desc, err := remote.Get(ref)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tag, err, r.Output())
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, _ := idx.IndexManifest()
		var got []string
		for _, m := range im.Manifests {
			got = append(got, m.Annotations[ociimage.AnnotationBootMode]+"/"+m.Platform.Architecture)
			if m.Annotations[ociimage.AnnotationRevision] != "0123abc" || m.Annotations[ociimage.AnnotationVersion] != "7.1" {
				t.Errorf("%s entry annotations %v", tag, m.Annotations)
			}
		}
		if strings.Join(got, " ") != strings.Join(entries, " ") {
			t.Fatalf("%s holds %v, want %v\n%s", tag, got, entries, r.Output())
		}
		digests[tag] = desc.Digest.String()
	}
	// Layer digests are the sha256 the builder recorded for its files.
	files := map[string]string{}
	for _, arch := range []string{"x86_64", "aarch64"} {
		for _, bm := range []string{"virtualization", "baremetal"} {
			key := "acc-" + arch + "-" + bm
			for _, ext := range []string{"raw", "kernel", "initrd", "rootfs"} {
				files[bm+"/"+arch+"/"+ext] = "sha256:" + fileSHA256(t, filepath.Join(dir, "out", key, key+"."+ext))
			}
		}
	}
	for _, arch := range [][2]string{{"amd64", "x86_64"}, {"arm64", "aarch64"}} {
		ref, _ := name.ParseReference(repo + ":7.1-baremetal-" + arch[0])
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest()
		var got []string
		for _, l := range m.Layers {
			got = append(got, l.Digest.String())
		}
		wantL := []string{files["baremetal/"+arch[1]+"/kernel"], files["baremetal/"+arch[1]+"/initrd"], files["baremetal/"+arch[1]+"/rootfs"]}
		if strings.Join(got, " ") != strings.Join(wantL, " ") {
			t.Fatalf("baremetal %s layers %v, want the files' sha256 %v", arch[0], got, wantL)
		}
		ref, _ = name.ParseReference(repo + ":7.1-virtualization-" + arch[0])
		img, _ = remote.Image(ref)
		m, _ = img.Manifest()
		if len(m.Layers) != 1 || m.Layers[0].Digest.String() != files["virtualization/"+arch[1]+"/raw"] {
			t.Fatalf("virtualization %s layers %v", arch[0], m.Layers)
		}
	}
	printed := indexLine.FindAllStringSubmatch(r.Output(), -1)
	if len(printed) != 8 { // each build: its boot-mode index and the combined one
		t.Fatalf("%d index lines in packer's output:\n%s", len(printed), r.Output())
	}

	// Again, same inputs: no blob sent, the same digests.
	r2 := env.MustRun(t, dir, envs, append(append([]string{"build", "-force", "-parallel-builds=4"}, vars...), ".")...)
	sent := sentLine.FindAllStringSubmatch(r2.Output(), -1)
	if len(sent) != 4 {
		t.Fatalf("%d builds reported what they sent:\n%s", len(sent), r2.Output())
	}
	for _, s := range sent {
		if s[1] != "0" || s[2] != "0" {
			t.Fatalf("second run sent %s blobs, %s bytes:\n%s", s[1], s[2], r2.Output())
		}
	}
	for _, l := range indexLine.FindAllStringSubmatch(r2.Output(), -1) {
		if l[5] != "unchanged" || digests[l[2]] != l[3] {
			t.Fatalf("second run: index %s is %s (%s), first run %s", l[2], l[3], l[5], digests[l[2]])
		}
	}
}

func TestTheOCIExampleWritesALayoutReadByTheLayoutPackage(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "output")
	ex := filepath.Join(env.Root, "example", "oci")
	vars := []string{"-var", "output_directory=" + out}
	env.MustRun(t, dir, nil, append(append([]string{"validate"}, vars...), ex)...)
	r := env.MustRun(t, dir, nil, append(append([]string{"build", "-parallel-builds=2"}, vars...), ex)...)
	lp, err := layout.FromPath(filepath.Join(out, "oci"))
	if err != nil {
		t.Fatalf("%v\n%s", err, r.Output())
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, _ := top.IndexManifest()
	var refs []string
	var idxDigest v1.Hash
	for _, d := range tm.Manifests {
		refs = append(refs, d.Annotations[ociimage.AnnotationRefName])
		if d.Annotations[ociimage.AnnotationRefName] == "1.0-virtualization" {
			idxDigest = d.Digest
		}
	}
	sort.Strings(refs)
	if strings.Join(refs, " ") != "1.0-virtualization 1.0-virtualization-amd64 1.0-virtualization-arm64" {
		t.Fatalf("layout refs %v\n%s", refs, r.Output())
	}
	ii, err := top.ImageIndex(idxDigest)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := ii.IndexManifest()
	for i, arch := range []string{"amd64", "arm64"} {
		img, err := ii.Image(im.Manifests[i].Digest)
		if err != nil || im.Manifests[i].Platform.Architecture != arch {
			t.Fatalf("entry %d: %v %+v", i, err, im.Manifests[i].Platform)
		}
		ls, _ := img.Layers()
		dg, _ := ls[0].Digest()
		variantKey := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]
		if dg.String() != "sha256:"+fileSHA256(t, filepath.Join(out, "demo-"+variantKey+".raw")) {
			t.Fatalf("%s layer %s is not the disk", arch, dg)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "oci", "oci-layout")); err != nil {
		t.Fatal(err)
	}
}
