package test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
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
variable "version" { type = string }
variable "username" {
  type    = string
  default = ""
}
variable "password" {
  type      = string
  default   = ""
  sensitive = true
}

locals {
  variants = {
    for v in [["x86_64", "virtualization"], ["x86_64", "baremetal"], ["aarch64", "virtualization"], ["aarch64", "baremetal"]] :
    "acc-${v[0]}-${v[1]}" => { key = "acc-${v[0]}-${v[1]}", image = "acc", arch = v[0], platform = v[1], distro_version = var.version }
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
    username        = var.username
    password        = var.password
  }
}
`

var indexLine = regexp.MustCompile(`Index (\S+):(\S+)@(sha256:[0-9a-f]{64}) \((\d+) entries, (updated|unchanged)\)`)
var sentLine = regexp.MustCompile(`Sent (\d+) blobs, (\d+) bytes`)

// ociTarget is where the OCI acceptance test pushes: by default a
// distribution registry on loopback behind testsvc.RegistryProxy, which
// behaves as the real registries do (stale tags after a write); with
// OSIMAGE_LIVE_OCI_REPOSITORY set (make testlive), that repository with
// OSIMAGE_LIVE_OCI_USERNAME and OSIMAGE_LIVE_OCI_PASSWORD.
type ociTarget struct {
	push, read string // repository pushed to, and read back from
	user, pass string
	live       bool
	proxy      *testsvc.RegistryProxy
}

func newOCITarget(t *testing.T, b testsvc.RegistryBehaviour) *ociTarget {
	if repo := os.Getenv("OSIMAGE_LIVE_OCI_REPOSITORY"); repo != "" {
		return &ociTarget{push: repo, read: repo, user: os.Getenv("OSIMAGE_LIVE_OCI_USERNAME"), pass: os.Getenv("OSIMAGE_LIVE_OCI_PASSWORD"), live: true}
	}
	reg := testsvc.StartRegistry(t)
	proxy := testsvc.StartRegistryProxy(t, reg.Host, b)
	return &ociTarget{push: proxy.Host + "/os/acc", read: reg.Host + "/os/acc", proxy: proxy}
}

func (o *ociTarget) options() []remote.Option {
	if o.user == "" {
		return nil
	}
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: o.user, Password: o.pass})}
}

// version is unique per live run (tags there outlive the test), fixed on
// the stand-ins.
func (o *ociTarget) version() string {
	if o.live {
		return "7.1." + strconv.FormatInt(time.Now().Unix(), 10)
	}
	return "7.1"
}

// cleanup deletes what a live run pushed, where the registry allows it
// (distribution, Harbor, Quay, ACR, ECR do; GHCR and Docker Hub need their
// own APIs: see TESTING.md).
func (o *ociTarget) cleanup(t *testing.T, tags []string) {
	if !o.live {
		return
	}
	for _, tag := range tags {
		ref, err := name.ParseReference(o.read + ":" + tag)
		if err != nil {
			continue
		}
		desc, err := remote.Head(ref, o.options()...)
		if err != nil {
			continue
		}
		if err := remote.Delete(ref.Context().Digest(desc.Digest.String()), o.options()...); err != nil {
			t.Logf("clean-up: %s not deleted: %v", ref, err)
		}
	}
}

// Four variants through four packer plugin processes (-parallel-builds=4)
// into a registry that serves each tag's previous version for a minute
// after every write: every index ends with every entry. The re-run with
// -force, against a registry that adds Content-Type parameters, sends no
// blob, writes no tag and keeps every entry.
func TestParallelPackerBuildsMergeFourVariantsIntoTheIndexes(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "debugfs", "e2fsprogs")
	target := newOCITarget(t, testsvc.RegistryBehaviour{StaleFor: time.Minute})
	dir := t.TempDir()
	// An MBR disk: its Linux root partition type names no architecture, so
	// the same image serves the x86_64 and aarch64 variants.
	d := disktest.Make(t, dir, "src.raw", disktest.Options{MBR: true})
	version := target.version()
	acc.WriteTemplate(t, dir, "oci.pkr.hcl", ociTemplate)
	vars := []string{"-var", "src=" + d.Path, "-var", "sum=sha256:" + fileSHA256(t, d.Path), "-var", "out=" + filepath.Join(dir, "out"),
		"-var", "repo=" + target.push, "-var", "version=" + version}
	// Each build runs in its own plugin process, side by side; the lock
	// directory is the system's, as for users. Credentials go through the
	// environment, never the command line (which logs and ps show).
	envs := []string{"SOURCE_DATE_EPOCH=1764460800", "TMPDIR=" + t.TempDir(), "PKR_VAR_username=" + target.user, "PKR_VAR_password=" + target.pass}
	env.MustRun(t, dir, envs, append(append([]string{"validate"}, vars...), ".")...)
	r := env.MustRun(t, dir, envs, append(append([]string{"build", "-parallel-builds=4"}, vars...), ".")...)

	want := map[string][]string{
		version:            {"baremetal/amd64", "baremetal/arm64", "virtualization/amd64", "virtualization/arm64"},
		version + "-kvm":   {"virtualization/amd64", "virtualization/arm64"},
		version + "-metal": {"baremetal/amd64", "baremetal/arm64"},
	}
	var tags []string
	for tag := range want {
		tags = append(tags, tag)
		for _, arch := range []string{"amd64", "arm64"} {
			tags = append(tags, tag+"-"+arch)
		}
	}
	defer target.cleanup(t, tags)
	digests := map[string]string{}
	for tag, entries := range want {
		ref, _ := name.ParseReference(target.read + ":" + tag)
		desc, err := remote.Get(ref, target.options()...)
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
			if m.Annotations[ociimage.AnnotationRevision] != "0123abc" || m.Annotations[ociimage.AnnotationVersion] != version {
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
		ref, _ := name.ParseReference(target.read + ":" + version + "-metal-" + arch[0])
		img, err := remote.Image(ref, target.options()...)
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
		ref, _ = name.ParseReference(target.read + ":" + version + "-kvm-" + arch[0])
		img, _ = remote.Image(ref, target.options()...)
		m, _ = img.Manifest()
		if len(m.Layers) != 1 || m.Layers[0].Digest.String() != files["virtualization/"+arch[1]+"/raw"] {
			t.Fatalf("virtualization %s layers %v", arch[0], m.Layers)
		}
	}
	printed := indexLine.FindAllStringSubmatch(r.Output(), -1)
	if len(printed) != 8 { // each build: its boot-mode index and the combined one
		t.Fatalf("%d index lines in packer's output:\n%s", len(printed), r.Output())
	}

	// Again, same inputs, -force: no blob sent, no tag written, the same
	// digests, though the registry now adds parameters to Content-Type.
	if target.proxy != nil {
		target.proxy.Set(testsvc.RegistryBehaviour{ContentTypeParams: "; charset=utf-8"})
	}
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
	if n := strings.Count(r2.Output(), "Wrote no tag"); n != 4 {
		t.Fatalf("%d of 4 builds wrote no tag:\n%s", n, r2.Output())
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
		if d.Annotations[ociimage.AnnotationRefName] == "1.0-kvm" {
			idxDigest = d.Digest
		}
	}
	sort.Strings(refs)
	if strings.Join(refs, " ") != "1.0-kvm 1.0-kvm-amd64 1.0-kvm-arm64" {
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

// Each build pushes its manifest and arch tags only (index_mode = "none"),
// then one run writes the indexes from them (index_mode = "only"): the flow
// for repositories with immutable tags, against a stand-in that refuses
// every tag overwrite as ECR does.
const ociImmutableTemplate = acc.RequiredPlugins + `
variable "out" { type = string }
variable "repo" { type = string }
variable "mode" { type = string }

locals {
  variants = {
    for arch in ["x86_64", "aarch64"] : "imm-${arch}" => {
      key = "imm-${arch}", image = "imm", arch = arch, platform = "virtualization", distro_version = "1.0"
    }
  }
}

source "file" "disk" {
  content = "a raw disk image"
}

build {
  dynamic "source" {
    for_each = local.variants
    labels   = ["file.disk"]
    content {
      name   = source.key
      target = "${var.out}/${source.key}.raw"
    }
  }
  post-processor "osimage-oci" {
    repository   = var.repo
    variant      = jsonencode(local.variants[source.name])
    index_mode   = var.mode
    combined_tag = "{{ .Version }}"
  }
}
`

func TestImmutableRepositoriesTakePerBuildTagsThenOneIndexRun(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	reg := testsvc.StartRegistry(t)
	proxy := testsvc.StartRegistryProxy(t, reg.Host, testsvc.RegistryBehaviour{Immutable: true})
	dir := t.TempDir()
	acc.WriteTemplate(t, dir, "imm.pkr.hcl", ociImmutableTemplate)
	vars := []string{"-var", "out=" + filepath.Join(dir, "out"), "-var", "repo=" + proxy.Host + "/os/imm"}
	envs := []string{"SOURCE_DATE_EPOCH=1764460800", "TMPDIR=" + t.TempDir()}
	r := env.MustRun(t, dir, envs, append(append([]string{"build", "-parallel-builds=2", "-var", "mode=none"}, vars...), ".")...)
	ref, _ := name.ParseReference(reg.Host + "/os/imm:1.0-kvm")
	if _, err := remote.Head(ref); err == nil {
		t.Fatalf("index_mode none wrote the index tag:\n%s", r.Output())
	}
	r = env.MustRun(t, dir, envs, append(append([]string{"build", "-only=file.imm-x86_64", "-var", "mode=only"}, vars...), ".")...)
	for tag, want := range map[string]string{"1.0-kvm": "virtualization/amd64 virtualization/arm64", "1.0": "virtualization/amd64 virtualization/arm64"} {
		ref, _ := name.ParseReference(reg.Host + "/os/imm:" + tag)
		idx, err := remote.Index(ref)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tag, err, r.Output())
		}
		im, _ := idx.IndexManifest()
		var got []string
		for _, m := range im.Manifests {
			got = append(got, m.Annotations[ociimage.AnnotationBootMode]+"/"+m.Platform.Architecture)
		}
		if strings.Join(got, " ") != want {
			t.Fatalf("%s holds %v, want %s\n%s", tag, got, want, r.Output())
		}
	}
	if !strings.Contains(r.Output(), "Wrote tags 1.0, 1.0-kvm") || proxy.Refused() != 0 {
		t.Fatalf("%d overwrites refused:\n%s", proxy.Refused(), r.Output())
	}
}
