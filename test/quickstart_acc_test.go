package test

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/osimage/packer-plugin-osimage/internal/ociimage"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

// The quickstart (issue 23), as a new user runs it from the docs alone: own
// image definitions without a KIWI definition and a multi-arch registry
// target without per-arch entries, disks made by the example's script,
// VHD and upload for one variant chosen with `only`, OCI push of all four,
// -parallel-builds=4. Checked with independent readers: qemu-img, a blob
// download with its MD5, the registry's API (go-containerregistry, as
// crane).
func TestQuickstartExampleBuildsAndPublishesEveryVariant(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "sgdisk", "gdisk")
	testutil.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	qemuImg := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	reg, az := testsvc.StartRegistry(t), testsvc.StartAzurite(t)
	dir := t.TempDir()
	example := filepath.Join(env.Root, "example", "quickstart")
	testutil.Run(t, filepath.Join(example, "make-disks.sh"), filepath.Join(dir, "disks"))
	out := filepath.Join(dir, "output")
	vars := []string{"-var", "disks=" + filepath.Join(dir, "disks"), "-var", "registry=" + reg.Host, "-var", "storage_connection_string=" + az.ConnectionString,
		"-var", "output_dir=" + out}

	// As the header says: validate needs the data source evaluated.
	env.MustRun(t, dir, nil, append(append([]string{"validate", "--evaluate-datasources"}, vars...), example)...)
	if r := env.Run(t, dir, nil, append(append([]string{"validate"}, vars...), example)...); r.Err == nil || !strings.Contains(r.Output(), "must be known") {
		t.Fatalf("plain validate: err=%v\n%s", r.Err, r.Output())
	}

	r := env.MustRun(t, dir, nil, append(append([]string{"build", "-parallel-builds=4"}, vars...), example)...)
	o := r.Output()
	keys := []string{"edge-aarch64-baremetal", "edge-aarch64-virtualization", "edge-x86_64-baremetal", "edge-x86_64-virtualization"}
	for _, k := range keys {
		if !strings.Contains(o, "Build 'osimage-disk."+k+"' finished") {
			t.Errorf("build %s did not finish:\n%s", k, o)
		}
	}
	if strings.Contains(o, "AccountKey") || strings.Contains(o, testsvc.DevStoreKey) {
		t.Error("the connection string was printed")
	}

	// VHD: only for x86_64 virtualization (`only` on the post-processors).
	vhds, _ := filepath.Glob(filepath.Join(out, "*", "*.vhd"))
	if len(vhds) != 1 || filepath.Base(filepath.Dir(vhds[0])) != "edge-x86_64-virtualization" {
		t.Fatalf("VHDs %v, want one for edge-x86_64-virtualization", vhds)
	}
	info, err := exec.Command(qemuImg, "info", "--output=json", "-f", "vpc", vhds[0]).Output()
	var qi struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err != nil || json.Unmarshal(info, &qi) != nil || qi.VirtualSize < 64<<20 {
		t.Fatalf("qemu-img info of the VHD: %v %s", err, info)
	}

	// The blob: one, holding the VHD's bytes, its Content-MD5 theirs.
	cl, err := azblob.NewClientFromConnectionString(az.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	var blobs []string
	pager := cl.NewListBlobsFlatPager("quickstart", nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			blobs = append(blobs, *b.Name)
		}
	}
	if len(blobs) != 1 {
		t.Fatalf("blobs in the container: %v, want 1", blobs)
	}
	dl, err := cl.DownloadStream(context.Background(), "quickstart", blobs[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	h := md5.New()
	io.Copy(h, dl.Body)
	dl.Body.Close()
	f, _ := os.Open(vhds[0])
	hv := md5.New()
	io.Copy(hv, f)
	f.Close()
	if sum := hv.Sum(nil); string(h.Sum(nil)) != string(sum) || base64.StdEncoding.EncodeToString(dl.ContentMD5) != base64.StdEncoding.EncodeToString(sum) {
		t.Fatalf("blob %s: MD5 %x, Content-MD5 %x; the VHD's MD5 is %x", blobs[0], h.Sum(nil), dl.ContentMD5, sum)
	}

	// The registry: every variant's manifest is in an index of
	// quickstart/edge, under its boot mode and arch.
	repo, err := name.NewRepository(reg.Host+"/quickstart/edge", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(repo)
	if err != nil {
		t.Fatalf("tags of %s: %v\n%s", repo, err, o)
	}
	var entries []string
	for _, tag := range tags {
		desc, err := remote.Get(repo.Tag(tag))
		if err != nil {
			t.Fatal(err)
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			continue // a per-arch manifest tag
		}
		im, _ := idx.IndexManifest()
		for _, m := range im.Manifests {
			entries = append(entries, m.Annotations[ociimage.AnnotationBootMode]+"/"+m.Platform.Architecture)
		}
	}
	for _, want := range []string{"virtualization/amd64", "virtualization/arm64", "baremetal/amd64", "baremetal/arm64"} {
		if !slices.Contains(entries, want) {
			t.Errorf("no index of %s (tags %v) holds %s; entries %v", repo, tags, want, entries)
		}
	}
	if m := regexp.MustCompile(`(?m)^--> osimage-disk\.edge-x86_64-virtualization: .*`).FindString(o); m == "" {
		t.Errorf("no artifact summary for the uploaded variant:\n%s", o)
	}
}

// What the matrix can know fails before any build starts, through the real
// packer: a registry target that names no repository, and a publish label
// no target carries (a typo), even without strict.
func TestMatrixRefusesAnUnnamedDestinationAndATypoLabelBeforeAnyBuild(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	dir := t.TempDir()
	src := filepath.Join(env.Root, "example", "quickstart")
	for _, f := range []string{"build.pkr.hcl", "images/images.toml", "images/edge.image.toml", "images/quickstart.distro.toml"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		if f == "build.pkr.hcl" {
			b = []byte(strings.Replace(string(b), "strict = true", "", 1)) // the default
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	distro := filepath.Join(dir, "images", "quickstart.distro.toml")
	orig, _ := os.ReadFile(distro)
	out := filepath.Join(dir, "output")
	vars := []string{"-var", "disks=" + dir, "-var", "registry=127.0.0.1:1", "-var", "storage_connection_string=UseDevelopmentStorage=true", "-var", "output_dir=" + out}
	for _, tc := range []struct {
		name, from, to string
		want           []string
	}{
		{"a registry target without a repository", `images = [{ name = "quickstart/edge" }]`, ``,
			[]string{"quickstart.distro.toml:", "publish target registry (oci-registry) names no repository for arch x86_64", "variant edge-x86_64-virtualization cannot be published"}},
		{"a label no target carries", `publish-labels = ["edge"]`, `publish-labels = ["egde"]`,
			[]string{"edge.image.toml:7:", `publish label "edge" matches no publish target`, "a typo?", "targets' labels: egde"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(distro, []byte(strings.Replace(string(orig), tc.from, tc.to, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			r := env.Run(t, dir, nil, append(append([]string{"build"}, vars...), ".")...)
			if r.Err == nil {
				t.Fatalf("the build passed:\n%s", r.Output())
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Output(), w) {
					t.Errorf("output lacks %q:\n%s", w, r.Output())
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a build started: %v", err)
			}
		})
	}
}
