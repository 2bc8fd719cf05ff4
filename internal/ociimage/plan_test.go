package ociimage

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
)

var testCreated = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func testOptions() Options {
	return Options{ImageName: "debian", Version: "13.1", SourceRevision: "abc123", ArchTags: true, Created: testCreated}
}

func TestOCIArchAcceptsEveryProjectSpellingAndRejectsOthers(t *testing.T) {
	for in, want := range map[string]string{"x86_64": "amd64", "amd64": "amd64", "X64": "amd64", "aarch64": "arm64", " arm64 ": "arm64"} {
		got, err := OCIArch(in)
		if err != nil || got != want {
			t.Errorf("OCIArch(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "riscv64", "arm", "i386"} {
		if _, err := OCIArch(in); !errors.Is(err, ErrUnknownArch) || !strings.Contains(err.Error(), in) {
			t.Errorf("OCIArch(%q) error %v, want ErrUnknownArch naming the value", in, err)
		}
	}
}

func TestSelectLayersPicksFilesByRoleInManifestOrder(t *testing.T) {
	f := func(role, format string) artifact.File {
		return artifact.File{Path: "/x/" + role + "." + format, Role: role, Format: format}
	}
	cases := []struct {
		name    string
		mode    string
		files   []artifact.File
		want    []string // role:mediaType:path
		wantErr string
	}{
		{"virtualization takes the raw disk", Virtualization, []artifact.File{f("rootfs", "ext4"), f("disk", "raw")},
			[]string{"rootfs:" + MediaTypeRootfs + ":/x/disk.raw"}, ""},
		{"virtualization takes a disk of unknown format", Virtualization, []artifact.File{f("disk", "")},
			[]string{"rootfs:" + MediaTypeRootfs + ":/x/disk."}, ""},
		{"virtualization falls back to rootfs", Virtualization, []artifact.File{f("rootfs", "ext4"), f("disk", "qcow2")},
			[]string{"rootfs:" + MediaTypeRootfs + ":/x/rootfs.ext4"}, ""},
		{"virtualization refuses a qcow2 disk alone", Virtualization, []artifact.File{f("disk", "qcow2")}, nil, "/x/disk.qcow2 is qcow2"},
		{"virtualization without disk or rootfs", Virtualization, []artifact.File{f("kernel", "")}, nil, "needs a raw disk (file role disk) or a rootfs file (file role rootfs); the artifact holds /x/kernel. (kernel)"},
		{"baremetal kernel initramfs rootfs", Baremetal, []artifact.File{f("rootfs", ""), f("initrd", ""), f("disk", "raw"), f("kernel", "")},
			[]string{"kernel:" + MediaTypeKernel + ":/x/kernel.", "initramfs:" + MediaTypeInitramfs + ":/x/initrd.", "rootfs:" + MediaTypeRootfs + ":/x/rootfs."}, ""},
		{"baremetal with squashfs and uki", Baremetal, []artifact.File{f("uki", ""), f("squashfs", ""), f("initrd", ""), f("kernel", "")},
			[]string{"kernel:" + MediaTypeKernel + ":/x/kernel.", "initramfs:" + MediaTypeInitramfs + ":/x/initrd.", "squashfs:" + MediaTypeSquashfs + ":/x/squashfs.", "uki:" + MediaTypeUKI + ":/x/uki."}, ""},
		{"baremetal without kernel names it and the files", Baremetal, []artifact.File{f("disk", "raw"), f("initrd", ""), f("rootfs", "")}, nil,
			"needs a kernel (file role kernel); the artifact holds /x/disk.raw (disk), /x/initrd. (initrd), /x/rootfs. (rootfs)"},
		{"baremetal without initrd", Baremetal, []artifact.File{f("kernel", ""), f("rootfs", "")}, nil, "needs an initramfs (file role initrd)"},
		{"baremetal without root filesystem", Baremetal, []artifact.File{f("kernel", ""), f("initrd", "")}, nil, "needs a root filesystem (file role rootfs or squashfs)"},
		{"two kernels", Baremetal, []artifact.File{f("kernel", "a"), f("kernel", "b"), f("initrd", ""), f("rootfs", "")}, nil, "2 files with role kernel"},
		{"unknown boot mode", "metal", []artifact.File{f("disk", "raw")}, nil, `boot mode (platform) "metal"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			specs, _, err := selectLayers(Entry{Arch: "amd64", BootMode: c.mode, Files: c.files})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, c.wantErr)
				}
				if strings.Contains(c.wantErr, "needs") && !errors.Is(err, ErrMissingRole) {
					t.Fatalf("error %v is not ErrMissingRole", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range specs {
				got = append(got, s.Role+":"+s.MediaType+":"+s.File.Path)
				if s.Title != s.Role {
					t.Errorf("title %q of %s", s.Title, s.Role)
				}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("layers %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestRenderTagRendersTheVariantAndRejectsInvalidTags(t *testing.T) {
	d := TagData{Version: "13.1", Variant: "metal", Platform: "baremetal", Arch: "arm64", Image: "vm", ImageName: "debian", Key: "k"}
	got, err := RenderTag("tag", DefaultTag, d)
	if err != nil || got != "13.1-metal" {
		t.Fatalf("default tag %q, %v", got, err)
	}
	// The seed's boot mode names stay available.
	if got, _ := RenderTag("tag", "{{ .Version }}-{{ .Platform }}", d); got != "13.1-baremetal" {
		t.Fatalf("platform tag %q", got)
	}
	got, _ = RenderTag("tag", "{{ .ImageName }}-{{ .Image }}-{{ .Key }}-{{ .Arch }}", d)
	if got != "debian-vm-k-arm64" {
		t.Fatalf("got %q", got)
	}
	_, err = RenderTag("tag", DefaultTag, TagData{Variant: "metal", Platform: "baremetal"})
	if !errors.Is(err, ErrBadTag) || !strings.Contains(err.Error(), "the version is empty") || !strings.Contains(err.Error(), `"-metal"`) {
		t.Fatalf("empty version: %v", err)
	}
	if _, err := RenderTag("combined_tag", "{{ .Nope }}", d); err == nil || !strings.Contains(err.Error(), "combined_tag") {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := RenderTag("tag", "{{ .Version ", d); err == nil {
		t.Fatal("a broken template parsed")
	}
	if _, err := RenderTag("tag", "a/b", d); !errors.Is(err, ErrBadTag) {
		t.Fatalf("slash in tag: %v", err)
	}
	if _, err := RenderTag("tag", strings.Repeat("a", 128), d); err != nil {
		t.Fatalf("128 characters are allowed: %v", err)
	}
	if _, err := RenderTag("tag", strings.Repeat("a", 129), d); err == nil {
		t.Fatal("129 characters accepted")
	}
}

func TestCreatedComesFromSourceDateEpoch(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600))
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "SOURCE_DATE_EPOCH" {
				return v
			}
			return ""
		}
	}
	got, err := Created(env("1700000000"), now)
	if err != nil || !got.Equal(time.Unix(1700000000, 0)) || got.Location() != time.UTC {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := Created(env("0"), now); err != nil || !got.Equal(time.Unix(0, 0)) {
		t.Fatalf("SOURCE_DATE_EPOCH=0: %v, %v", got, err)
	}
	got, err = Created(env(""), now)
	if err != nil || !got.Equal(now.Truncate(time.Second)) || got.Location() != time.UTC {
		t.Fatalf("unset: %v, %v", got, err)
	}
	for _, bad := range []string{"yesterday", "-1", "1.5"} {
		if _, err := Created(env(bad), now); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

func decodeManifest(t testing.TB, raw []byte) v1.Manifest {
	t.Helper()
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewPlanBuildsIroncoreManifestsWithAnnotationsAndConfig(t *testing.T) {
	fx := makeEntries(t, 64<<10)
	p, err := NewPlan(fx.entries, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if len(p.Manifests) != 4 {
		t.Fatalf("%d manifests", len(p.Manifests))
	}
	for i, m := range p.Manifests {
		e := fx.entries[i]
		man := decodeManifest(t, m.Raw)
		if man.SchemaVersion != 2 || man.MediaType != "application/vnd.oci.image.manifest.v1+json" || man.Config.MediaType != MediaTypeConfig {
			t.Fatalf("manifest header %+v", man)
		}
		if man.Config.Digest != digestOf(m.Config) || man.Config.Size != int64(len(m.Config)) || m.Digest != digestOf(m.Raw) {
			t.Fatal("config or manifest digest wrong")
		}
		wantCmd := `{"commandLine":"console=ttyS0"}`
		if e.BootMode == Baremetal {
			wantCmd = `{"commandLine":"root=/dev/ram0 console=ttyAMA0"}` // from the cmdline file, trimmed
		}
		if string(m.Config) != wantCmd {
			t.Errorf("%s config %s, want %s", e.Key, m.Config, wantCmd)
		}
		arch, _ := OCIArch(e.Arch)
		wantAnn := map[string]string{
			AnnotationBootMode: e.BootMode, AnnotationArch: arch, AnnotationImage: "debian", AnnotationVersion: "13.1",
			AnnotationRevision: "abc123", AnnotationSpecVariant: map[string]string{Virtualization: "virtualization", Baremetal: "metal"}[e.BootMode], AnnotationSpecArch: arch,
			AnnotationTitle: "debian", AnnotationCreated: "2026-11-30T12:00:00Z",
		}
		if !reflect.DeepEqual(man.Annotations, wantAnn) {
			t.Errorf("manifest annotations %v\nwant %v", man.Annotations, wantAnn)
		}
		d := m.Descriptor
		if d.Digest != m.Digest || d.Size != int64(len(m.Raw)) || d.MediaType != man.MediaType ||
			d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != arch || d.Platform.Variant != "" {
			t.Errorf("descriptor %+v", d)
		}
		for k := range d.Annotations {
			if d.Annotations[k] != wantAnn[k] {
				t.Errorf("descriptor annotation %s=%q", k, d.Annotations[k])
			}
		}
		if len(d.Annotations) != 5 {
			t.Errorf("descriptor annotations %v: want boot mode, arch, image, version, revision", d.Annotations)
		}
		// Layer digests are the files' sha256, sizes their sizes.
		var roles []string
		for j, l := range man.Layers {
			src := m.Layers[j].Source
			st, _ := os.Stat(src)
			if l.Digest.String() != sha256Of(t, src) || l.Size != st.Size() {
				t.Errorf("layer %s: digest %s size %d; file %s %d", src, l.Digest, l.Size, sha256Of(t, src), st.Size())
			}
			if l.Annotations[AnnotationTitle] != m.Layers[j].Role {
				t.Errorf("layer title %v", l.Annotations)
			}
			roles = append(roles, string(l.MediaType))
		}
		want := []string{MediaTypeRootfs}
		if e.BootMode == Baremetal {
			want = []string{MediaTypeKernel, MediaTypeInitramfs, MediaTypeRootfs}
		}
		if !reflect.DeepEqual(roles, want) {
			t.Errorf("%s layers %v, want %v", e.Key, roles, want)
		}
	}
}

func TestNewPlanTrustsRecordedSHA256AndHashesOnlyFilesWithout(t *testing.T) {
	dir := t.TempDir()
	disk := writeFile(t, dir, "d.raw", artifact.RoleDisk, 4096)
	// A recorded sum that is not the file's: used as is, proving the file
	// is not hashed again.
	recorded := strings.Repeat("ab", 32)
	disk.SHA256 = "sha256:" + strings.ToUpper(recorded)
	p, err := NewPlan([]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{disk}}}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Manifests[0].Layers[0].Digest.Hex; got != recorded {
		t.Fatalf("digest %s, want the recorded %s", got, recorded)
	}
	p.Close()

	disk.SHA256, disk.Size = "", 0
	p, err = NewPlan([]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{disk}}}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Manifests[0].Layers[0].Digest.String(); got != sha256Of(t, disk.Path) {
		t.Fatalf("digest %s of a file without a recorded sum", got)
	}
	p.Close()

	disk.Size = 4097
	_, err = NewPlan([]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{disk}}}, testOptions())
	if !errors.Is(err, ErrBadDigest) || !strings.Contains(err.Error(), "has 4096 bytes, but the artifact recorded 4097") {
		t.Fatalf("size mismatch: %v", err)
	}
	disk.Size, disk.SHA256 = 0, "nothex"
	if _, err = NewPlan([]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{disk}}}, testOptions()); err == nil || !strings.Contains(err.Error(), `recorded sha256 "nothex"`) {
		t.Fatalf("bad recorded sum: %v", err)
	}
}

func TestNewPlanRejectsBadEntries(t *testing.T) {
	dir := t.TempDir()
	disk := writeFile(t, dir, "d.raw", artifact.RoleDisk, 10)
	cases := map[string]struct {
		es   []Entry
		o    Options
		want string
	}{
		"no entries":   {nil, testOptions(), "no entries"},
		"unknown arch": {[]Entry{{Arch: "mips", BootMode: Virtualization, Files: []artifact.File{disk}, Key: "k1"}}, testOptions(), `k1: unknown architecture "mips"; want x86_64`},
		"duplicate": {[]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{disk}, Key: "a"}, {Arch: "x86_64", BootMode: Virtualization, Files: []artifact.File{disk}, Key: "b"}},
			testOptions(), "a and b are both amd64/virtualization"},
		"missing file":      {[]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{{Path: filepath.Join(dir, "nope"), Role: "disk"}}}}, testOptions(), "no such file"},
		"directory":         {[]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{{Path: dir, Role: "disk"}}}}, testOptions(), "not a regular file"},
		"compression":       {[]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{disk}}}, Options{Version: "1", Compression: "xz"}, `compression "xz"`},
		"no version":        {[]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{disk}}}, Options{}, "the version is empty"},
		"big cmdline":       {[]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{disk, writeFile(t, dir, "c", "cmdline", 65<<10)}}}, testOptions(), "at most 65536"},
		"combined collides": {[]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{disk}}}, Options{Version: "1", CombinedTag: "1-kvm"}, "both a per-boot-mode index and the combined index"},
		"arch tags collide": {[]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{disk}}, {Arch: "amd64", BootMode: Baremetal, Files: []artifact.File{disk, {Path: disk.Path, Role: "kernel"}, {Path: disk.Path, Role: "initrd"}, {Path: disk.Path, Role: "rootfs"}}}},
			Options{Version: "1", Tag: "{{ .Version }}", ArchTags: true}, `tag "1-amd64" would point at two manifests`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := NewPlan(c.es, c.o)
			if err == nil {
				p.Close()
				t.Fatalf("accepted; want %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestACmdlineFileOfExactlyTheLimitIsAccepted(t *testing.T) {
	dir := t.TempDir()
	disk := writeFile(t, dir, "d.raw", artifact.RoleDisk, 10)
	line := strings.Repeat("x", 64<<10)
	p, err := NewPlan([]Entry{{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{disk, cmdlineFile(t, dir, "c", line)}}}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if string(p.Manifests[0].Config) != `{"commandLine":"`+line+`"}` {
		t.Fatal("command line not in the config")
	}
}

func TestPlanTagsPerBootModeArchAndCombinedInDocumentedOrder(t *testing.T) {
	fx := makeEntries(t, 1024)
	o := testOptions()
	o.CombinedTag = "{{ .Version }}"
	o.ExtraTags = []string{"latest-{{ .Platform }}", DefaultTag}
	o.PlatformVariant = true
	// Entries given in an order different from the documented one.
	es := []Entry{fx.entries[3], fx.entries[0], fx.entries[1], fx.entries[2]}
	p, err := NewPlan(es, o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got := map[string][]string{}
	var order []string
	for _, it := range p.Indexes {
		order = append(order, it.Tag)
		for _, mi := range it.Manifests {
			m := p.Manifests[mi]
			got[it.Tag] = append(got[it.Tag], m.BootMode+"/"+m.Arch)
		}
		if it.PlatformVariant != (it.Tag == "13.1") {
			t.Errorf("%s: platform variant %v", it.Tag, it.PlatformVariant)
		}
		if it.Annotations[AnnotationCreated] != "2026-11-30T12:00:00Z" || it.Annotations[AnnotationVersion] != "13.1" || it.Annotations[AnnotationTitle] != "debian" || it.Annotations[AnnotationRevision] != "abc123" {
			t.Errorf("%s annotations %v", it.Tag, it.Annotations)
		}
	}
	want := map[string][]string{
		"13.1":                  {"baremetal/amd64", "baremetal/arm64", "virtualization/amd64", "virtualization/arm64"},
		"13.1-kvm":              {"virtualization/amd64", "virtualization/arm64"},
		"13.1-metal":            {"baremetal/amd64", "baremetal/arm64"},
		"latest-virtualization": {"virtualization/amd64", "virtualization/arm64"},
		"latest-baremetal":      {"baremetal/amd64", "baremetal/arm64"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("indexes %v\nwant %v", got, want)
	}
	if !reflect.DeepEqual(order, []string{"13.1", "13.1-kvm", "13.1-metal", "latest-baremetal", "latest-virtualization"}) {
		t.Fatalf("index order %v", order)
	}
	var ats []string
	for _, at := range p.ArchTags {
		m := p.Manifests[at.Manifest]
		ats = append(ats, at.Tag+"="+m.BootMode+"/"+m.Arch)
	}
	if !reflect.DeepEqual(ats, []string{"13.1-kvm-amd64=virtualization/amd64", "13.1-kvm-arm64=virtualization/arm64", "13.1-metal-amd64=baremetal/amd64", "13.1-metal-arm64=baremetal/arm64"}) {
		t.Fatalf("arch tags %v", ats)
	}
	// Without ArchTags, none.
	o.ArchTags = false
	p2, err := NewPlan(es, o)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if len(p2.ArchTags) != 0 {
		t.Fatalf("arch tags without ArchTags: %v", p2.ArchTags)
	}
}

func TestSameInputsGiveTheSameDigests(t *testing.T) {
	fx := makeEntries(t, 8<<10)
	digests := func(o Options) []string {
		p, err := NewPlan(fx.entries, o)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		var out []string
		for _, m := range p.Manifests {
			out = append(out, m.Digest.String())
		}
		return out
	}
	a, b := digests(testOptions()), digests(testOptions())
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("digests differ between runs: %v %v", a, b)
	}
	o := testOptions()
	o.Created = o.Created.Add(time.Second)
	if c := digests(o); reflect.DeepEqual(a, c) {
		t.Fatal("created does not enter the digests")
	}
	seen := map[string]bool{}
	for _, d := range a {
		if seen[d] {
			t.Fatal("two entries share a manifest digest")
		}
		seen[d] = true
	}
}

func TestCompressedLayersRoundTripAndAreReproducible(t *testing.T) {
	fx := makeEntries(t, 3<<20)
	for _, c := range []string{CompressionGzip, CompressionZstd} {
		t.Run(c, func(t *testing.T) {
			o := testOptions()
			o.Compression = c
			o.WorkDir = t.TempDir()
			p, err := NewPlan(fx.entries[:2], o)
			if err != nil {
				t.Fatal(err)
			}
			p2, err := NewPlan(fx.entries[:2], o)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range p.Manifests {
				if m.Digest != p2.Manifests[i].Digest {
					t.Errorf("%s: manifest digest differs between two compressions", c)
				}
				for _, l := range m.Layers {
					if !strings.HasSuffix(l.MediaType, "+"+c) {
						t.Errorf("media type %s", l.MediaType)
					}
					if l.Path == l.Source {
						t.Fatal("compressed layer streams the source")
					}
					b, _ := os.ReadFile(l.Path)
					if digestOf(b) != l.Digest || int64(len(b)) != l.Size {
						t.Errorf("%s: digest/size do not describe the compressed file", l.Path)
					}
					var r io.Reader
					if c == CompressionGzip {
						r, err = gzip.NewReader(bytes.NewReader(b))
					} else {
						var zr *zstd.Decoder
						zr, err = zstd.NewReader(bytes.NewReader(b))
						r = zr
					}
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(r)
					if err != nil {
						t.Fatal(err)
					}
					src, _ := os.ReadFile(l.Source)
					if !bytes.Equal(got, src) {
						t.Errorf("%s does not decompress to %s", l.Path, l.Source)
					}
				}
			}
			// The baremetal manifest shares nothing with the virtualization one,
			// but a file used twice is compressed once.
			p.Close()
			p2.Close()
			left, _ := os.ReadDir(o.WorkDir)
			if len(left) != 0 {
				t.Fatalf("Close left %d compressed files", len(left))
			}
		})
	}
}

func TestAFileInTwoManifestsIsPreparedOnce(t *testing.T) {
	dir := t.TempDir()
	rootfs := writeFile(t, dir, "r", artifact.RoleRootfs, 1<<20)
	es := []Entry{
		{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{rootfs}},
		{Arch: "amd64", BootMode: Baremetal, Files: []artifact.File{rootfs, writeFile(t, dir, "k", "kernel", 10), writeFile(t, dir, "i", "initrd", 10)}},
	}
	o := testOptions()
	o.Compression = CompressionZstd
	o.WorkDir = t.TempDir()
	p, err := NewPlan(es, o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if n, _ := os.ReadDir(o.WorkDir); len(n) != 3 {
		t.Fatalf("%d compressed files for 3 distinct files", len(n))
	}
	if p.Manifests[0].Layers[0].Path != p.Manifests[1].Layers[2].Path {
		t.Fatal("the shared rootfs was compressed twice")
	}
}
