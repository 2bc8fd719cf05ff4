package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/ociimage"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

func configure(t *testing.T, raw map[string]interface{}) *PostProcessor {
	t.Helper()
	p := &PostProcessor{}
	raw["packer_build_name"] = "b1"
	raw["packer_builder_type"] = "osimage-disk"
	if err := p.Configure(raw); err != nil {
		t.Fatal(err)
	}
	return p
}

func diskFile(t *testing.T, dir string) artifact.File {
	t.Helper()
	p := filepath.Join(dir, "disk.raw")
	b := []byte(strings.Repeat("disk", 4096))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return artifact.File{Path: p, Role: artifact.RoleDisk, Format: "raw", Size: int64(len(b)), SHA256: hex.EncodeToString(s[:])}
}

func TestPostProcessWritesALayoutFromTheArtifactsVariant(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	dir := t.TempDir()
	f := diskFile(t, dir)
	in := &artifact.Artifact{Builder: "osimage.builder.disk", Variant: variant.Variant{Key: "deb-x86_64-virtualization", Image: "vm", Arch: "x86_64", Platform: "virtualization", DistroVersion: "13", ReleaseVer: "13.1"},
		Outputs: []artifact.File{f}}
	layout := filepath.Join(dir, "oci")
	p := configure(t, map[string]interface{}{"layout_dir": layout, "source_revision": "abc", "combined_tag": "{{ .Version }}"})
	out, keep, force, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if !keep || force {
		t.Fatalf("keep=%v force=%v: the input must be kept", keep, force)
	}
	if out.BuilderId() != BuilderID || out.State("oci_destination") != layout {
		t.Fatalf("artifact %s %v", out.BuilderId(), out.State("oci_destination"))
	}
	digest, _ := out.State("oci_manifest_digest").(string)
	if !strings.HasPrefix(digest, "sha256:") || out.Id() != layout+"@"+digest {
		t.Fatalf("manifest digest %q id %q", digest, out.Id())
	}
	if out.State("oci_manifests") != "amd64/virtualization="+digest {
		t.Fatalf("oci_manifests %v", out.State("oci_manifests"))
	}
	for _, tag := range []string{"13.1", "13.1-kvm"} {
		d, _ := out.State("oci_index_digest." + tag).(string)
		if !strings.HasPrefix(d, "sha256:") || !strings.Contains(out.State("oci_indexes").(string), tag+"="+d) {
			t.Fatalf("index %s: %q in %v", tag, d, out.State("oci_indexes"))
		}
		if !strings.Contains(out.State("oci_refs").(string), layout+":"+tag+"@"+d) {
			t.Fatalf("refs %v lack %s", out.State("oci_refs"), tag)
		}
	}
	if !strings.Contains(out.State("oci_refs").(string), layout+":13.1-kvm-amd64") {
		t.Fatalf("refs %v lack the arch tag", out.State("oci_refs"))
	}
	if out.State("oci_tags_written") != "13.1-kvm-amd64,13.1,13.1-kvm" {
		t.Fatalf("oci_tags_written %v", out.State("oci_tags_written"))
	}
	// The end-of-build summary names every digest and the tags written.
	kvm := out.State("oci_index_digest.13.1-kvm").(string)
	for _, want := range []string{"manifest amd64/virtualization " + layout + "@" + digest,
		"index    " + layout + ":13.1-kvm@" + kvm + " (1 entries, tag written)",
		"tag      " + layout + ":13.1-kvm-amd64 (written)"} {
		if s := out.String(); !strings.Contains(s, want) {
			t.Fatalf("String lacks %q:\n%s", want, s)
		}
	}
	// The model travels on: a later post-processor reads files and variant.
	back, err := artifact.From(out)
	if err != nil || back.Variant.Key != "deb-x86_64-virtualization" || len(back.Outputs) != 1 || back.Extra["oci_manifest_digest"] != digest {
		t.Fatalf("artifact.From: %v %+v", err, back)
	}
	img, ok := out.State(registryimage.ArtifactStateURI).(*registryimage.Image)
	if !ok || img.ProviderName != "oci" || img.ImageID != layout+"@"+digest || img.ProviderRegion != layout || img.Labels["platform"] != "virtualization" || img.Labels["oci_manifest_digest"] != digest {
		t.Fatalf("HCP metadata %+v", img)
	}
	// Same inputs, same SOURCE_DATE_EPOCH: same digest.
	out2, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err != nil || out2.State("oci_manifest_digest") != digest {
		t.Fatalf("second run: %v %v", err, out2.State("oci_manifest_digest"))
	}
	if s := out2.String(); out2.State("oci_tags_written") != "" || !strings.Contains(s, "(1 entries, tag unchanged)") || !strings.Contains(s, "13.1-kvm-amd64 (unchanged)") {
		t.Fatalf("second run wrote %v:\n%s", out2.State("oci_tags_written"), s)
	}
}

func TestPostProcessPushesToTheVariantsRegistryTarget(t *testing.T) {
	reg := testsvc.StartRegistry(t)
	dir := t.TempDir()
	in := &artifact.Artifact{Builder: "osimage.builder.disk", Outputs: []artifact.File{diskFile(t, dir)},
		Variant: variant.Variant{Key: "k", Arch: "aarch64", Platform: "virtualization", DistroVersion: "4.0",
			Targets: []variant.Target{{Name: "acg", InterfaceType: variant.InterfaceAzureComputeGallery, ResourceURN: "/subscriptions/x"},
				{Name: "ghcr", InterfaceType: variant.InterfaceOCIRegistry, ResourceURN: reg.Host, ImageName: "os/azl"}}}}
	p := configure(t, map[string]interface{}{})
	out, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if out.State("oci_destination") != reg.Host+"/os/azl" || !strings.Contains(out.State("oci_refs").(string), reg.Host+"/os/azl:4.0-kvm@sha256:") {
		t.Fatalf("state %v %v", out.State("oci_destination"), out.State("oci_refs"))
	}
}

func TestTheVariantAttributeDescribesForeignArtifacts(t *testing.T) {
	dir := t.TempDir()
	f := diskFile(t, dir)
	// A file builder's artifact: one file, no variant.
	in, err := artifact.From(fileArtifact{f.Path})
	if err != nil {
		t.Fatal(err)
	}
	p := configure(t, map[string]interface{}{"layout_dir": filepath.Join(dir, "oci"),
		"variant": `{"key":"foreign","arch":"arm64","platform":"virtualization","distro_version":"2.0","image":"img"}`})
	j, err := p.config.job(in)
	if err != nil {
		t.Fatal(err)
	}
	if j.entry.Arch != "arm64" || j.entry.BootMode != "virtualization" || j.options.Version != "2.0" || j.options.ImageName != "img" || j.entry.Key != "foreign" {
		t.Fatalf("job %+v %+v", j.entry, j.options)
	}
	if _, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in); err != nil {
		t.Fatal(err)
	}
	// Without it, the error says what to do.
	p = configure(t, map[string]interface{}{"layout_dir": filepath.Join(dir, "oci")})
	if _, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in); err == nil || !strings.Contains(err.Error(), "carries no variant") || !strings.Contains(err.Error(), "variant = jsonencode") {
		t.Fatalf("error %v", err)
	}
}

type fileArtifact struct{ path string }

func (f fileArtifact) BuilderId() string        { return artifact.FileBuilderID }
func (f fileArtifact) Files() []string          { return []string{f.path} }
func (f fileArtifact) State(string) interface{} { return nil }
func (f fileArtifact) Id() string               { return f.path }
func (f fileArtifact) String() string           { return f.path }
func (f fileArtifact) Destroy() error           { return nil }

func TestJobResolvesTheDestinationAndNamesWhatIsMissing(t *testing.T) {
	tgt := func(name, urn, img string) variant.Target {
		return variant.Target{Name: name, InterfaceType: variant.InterfaceOCIRegistry, ResourceURN: urn, ImageName: img}
	}
	v := variant.Variant{Key: "k", Arch: "x86_64", Platform: "baremetal", DistroVersion: "1", ReleaseVer: "1.2", ImageName: "vimg", Image: "image"}
	cases := []struct {
		name    string
		cfg     map[string]interface{}
		targets []variant.Target
		repo    string
		image   string
		wantErr string
	}{
		{"repository wins", map[string]interface{}{"repository": "r.io/a/b"}, []variant.Target{tgt("t", "x.io", "y")}, "r.io/a/b", "vimg", ""},
		{"the only target", nil, []variant.Target{tgt("t", "x.io/", "/os/y")}, "x.io/os/y", "y", ""},
		{"named target", map[string]interface{}{"target": "b"}, []variant.Target{tgt("a", "a.io", "a"), tgt("b", "b.io", "os/b")}, "b.io/os/b", "b", ""},
		{"image_name option", map[string]interface{}{"image_name": "mine"}, []variant.Target{tgt("t", "x.io", "os/y")}, "x.io/os/y", "mine", ""},
		{"no target", nil, nil, "", "", "no destination: set repository or layout_dir, or give variant k a target with interface_type = \"oci-registry\""},
		{"two targets", nil, []variant.Target{tgt("a", "a.io", "a"), tgt("b", "b.io", "b")}, "", "", "variant k has 2 oci-registry targets (a, b): choose one with target"},
		{"unknown target", map[string]interface{}{"target": "c"}, []variant.Target{tgt("a", "a.io", "a")}, "", "", `target = "c": variant k has no such oci-registry target (it has a)`},
		{"unresolved target", nil, []variant.Target{tgt("a", "*", "os/a")}, "", "", `target a: resource_urn "*" (the registry host)`},
		{"unresolved named target", map[string]interface{}{"target": "a"}, []variant.Target{tgt("a", "a.io", "")}, "", "", `image_name ""`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.cfg == nil {
				c.cfg = map[string]interface{}{}
			}
			p := configure(t, c.cfg)
			vv := v
			vv.Targets = c.targets
			j, err := p.config.job(&artifact.Artifact{Variant: vv})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if j.dest.Repository != c.repo || j.options.ImageName != c.image || j.options.Version != "1.2" || j.entry.Arch != "amd64" || j.entry.BootMode != "baremetal" || !j.options.ArchTags {
				t.Fatalf("job %+v %+v %+v", j.dest, j.options, j.entry)
			}
		})
	}
	// The version falls back to distro_version; an unknown arch is named.
	p := configure(t, map[string]interface{}{"repository": "r.io/x", "arch_tags": false, "kernel_cmdline": "quiet", "insecure": true, "username": "u", "password": "p", "jobs": 2, "compression": "ZSTD"})
	vv := v
	vv.ReleaseVer = ""
	j, err := p.config.job(&artifact.Artifact{Variant: vv})
	if err != nil || j.options.Version != "1" || j.options.ArchTags || j.entry.KernelCmdline != "quiet" || !j.dest.Insecure || j.dest.Username != "u" || j.dest.Password != "p" || j.dest.Jobs != 2 || j.options.Compression != ociimage.CompressionZstd {
		t.Fatalf("job %v %+v %+v", err, j.options, j.dest)
	}
	vv.Arch = "sparc"
	if _, err := p.config.job(&artifact.Artifact{Variant: vv}); err == nil || !strings.Contains(err.Error(), `"sparc"`) {
		t.Fatalf("unknown arch: %v", err)
	}
	// A variant without a key is refused when the template is validated.
	var bad PostProcessor
	if err := bad.Configure(map[string]interface{}{"repository": "r.io/x", "variant": `{"arch":"x86_64"}`}); err == nil || !strings.Contains(err.Error(), "variant") {
		t.Fatalf("variant without key: %v", err)
	}
}

func TestConfigRejectsBadSettingsNamingThem(t *testing.T) {
	cases := map[string]struct {
		raw  map[string]interface{}
		want string
	}{
		"two destinations":     {map[string]interface{}{"repository": "r.io/x", "layout_dir": "d"}, "repository and layout_dir exclude each other"},
		"compression":          {map[string]interface{}{"compression": "xz"}, `compression = "xz": want "none", "gzip" or "zstd"`},
		"password alone":       {map[string]interface{}{"password": "s"}, "password is set without username"},
		"jobs":                 {map[string]interface{}{"jobs": -1}, "jobs = -1"},
		"tag":                  {map[string]interface{}{"tag": "{{ .Nope }}"}, "tag \"{{ .Nope }}\""},
		"extra tag":            {map[string]interface{}{"extra_tags": []string{"ok", "bad tag"}}, `extra_tags[1] "bad tag" renders to "bad tag"`},
		"combined tag":         {map[string]interface{}{"combined_tag": "{{"}, "combined_tag"},
		"variant w/o combined": {map[string]interface{}{"platform_variant": true}, "platform_variant applies to the combined index"},
		"chunk":                {map[string]interface{}{"upload_chunk_mib": -1}, "upload_chunk_mib = -1"},
		"index mode":           {map[string]interface{}{"index_mode": "later"}, `index_mode = "later": want "merge", "none" or "only"`},
		"only w/o arch tags":   {map[string]interface{}{"index_mode": "only", "arch_tags": false}, "arch_tags must be true"},
		"combined first":       {map[string]interface{}{"combined_first": "metal"}, `combined_first = "metal": want "baremetal" or "virtualization"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := &PostProcessor{}
			err := p.Configure(c.raw)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	p := &PostProcessor{}
	if err := p.Configure(map[string]interface{}{"packer_force": true, "tag": "{{ .Version }}-{{ .Arch }}"}); err != nil {
		t.Fatal(err)
	}
	if !p.config.Force || p.config.Compression != "none" || !p.config.archTags() || p.config.Tag != "{{ .Version }}-{{ .Arch }}" {
		t.Fatalf("config %+v", p.config)
	}
}
