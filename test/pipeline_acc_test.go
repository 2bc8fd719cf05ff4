package test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
	"github.com/osimage/packer-plugin-osimage/internal/release"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

// The release `make demo` runs (example/debian), through the real packer
// binary, with disks made here instead of KIWI builds: stage publish (a
// pre-release), again (nothing twice), stage release (promotion without a
// rebuild or an upload), again, and the release manifest. Each artifact is
// checked with an independent reader: qemu-img, a blob download and its
// MD5, the registry API (as crane), the stand-in's requests.
func TestTheReleasePipelinePublishesPromotesAndDoesNothingTwice(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "sgdisk", "gdisk")
	qemuImg := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	reg, az, store := testsvc.StartRegistry(t), testsvc.StartAzurite(t), armfake.New()
	store.SourceBlobType = armfake.AzuriteBlobType(az.ConnectionString)
	srv, _, extra := startARMFake(t, store)
	dir := t.TempDir()
	testutil.Run(t, filepath.Join(env.Root, "example", "quickstart", "make-disks.sh"), filepath.Join(dir, "disks"))
	out, state := filepath.Join(dir, "out"), filepath.Join(dir, "state")
	example := filepath.Join(env.Root, "example", "debian")
	vars := []string{"-var", "state=" + state, "-var", "output_dir=" + out, "-var", "disks=" + filepath.Join(dir, "disks"),
		"-var", "registry=" + reg.Host, "-var", "storage_connection_string=" + az.ConnectionString, "-var", "storage_account=devstoreaccount1",
		"-var", `gallery={subscription="sub1", resource_group="rg1", name="gal1", location="westeurope"}`,
		"-var", "resource_manager_endpoint=" + srv.URL + "/", "-var", "use_azure_cli_auth=true"}
	run := func(stage, only string) string {
		t.Helper()
		r := env.MustRun(t, dir, extra, append(append([]string{"build", "-only=" + only, "-var", "stage=" + stage}, vars...), example)...)
		return r.Output()
	}
	vm, metal := "debian-vm-x86_64-virtualization-gen1", "debian-vm-x86_64-baremetal-gen1"

	// 1. Publish: both variants built, the VM's VHD uploaded and published
	// gen1 + gen2 (excluded from latest), every variant pushed without the
	// moving tags.
	o := run("publish", "osimage-*")
	for _, k := range []string{vm, metal} {
		if !strings.Contains(o, "Build 'osimage-disk."+k+"' finished") {
			t.Fatalf("%s was not built:\n%s", k, o)
		}
	}
	vhd := filepath.Join(out, vm, vm+".vhd")
	info, err := exec.Command(qemuImg, "info", "--output=json", "-f", "vpc", vhd).Output()
	if err != nil || !strings.Contains(string(info), `"virtual-size": 67108864`) {
		t.Fatalf("qemu-img info %s: %v %s", vhd, err, info)
	}
	blobs := blobMD5s(t, az, "debian-12")
	vhdMD5 := fileMD5(t, vhd)
	if len(blobs) != 1 {
		t.Fatalf("blobs %v, want the VM's one", blobs)
	}
	for name, sum := range blobs {
		if sum != vhdMD5 {
			t.Fatalf("blob %s has MD5 %s, the VHD %s", name, sum, vhdMD5)
		}
	}
	if store.VersionCreates.Load() != 2 {
		t.Fatalf("%d versions created, want gen1 and gen2", store.VersionCreates.Load())
	}
	for k, v := range store.Versions {
		if !*v.Properties.PublishingProfile.ExcludeFromLatest {
			t.Errorf("%s: a pre-release version is in latest", k)
		}
	}
	repo := reg.Host + "/debian/12"
	for _, tag := range []string{"12-kvm", "12-kvm-amd64", "12-metal", "12-metal-amd64"} {
		if !tagExists(t, repo, tag) {
			t.Errorf("%s:%s missing after publish", repo, tag)
		}
	}
	for _, tag := range []string{"latest-kvm", "latest-metal"} {
		if tagExists(t, repo, tag) {
			t.Errorf("%s:%s written by a pre-release", repo, tag)
		}
	}

	// 2. Publish again: nothing built, uploaded, created or pushed.
	o = run("publish", "osimage-*")
	if strings.Contains(o, "osimage-disk.") || strings.Contains(o, "Uploading") || strings.Contains(o, "Sent ") || store.VersionCreates.Load() != 2 ||
		strings.Count(o, "nothing to do") < 3 {
		t.Fatalf("a second publish did work again:\n%s", o)
	}

	// 3. Release: the versions into latest, the moving tags, no rebuild
	// or upload.
	o = run("release", "osimage-*")
	if strings.Contains(o, "osimage-disk.") || strings.Contains(o, "Uploading") || store.VersionCreates.Load() != 2 || store.VersionUpdates.Load() != 2 {
		t.Fatalf("release: %d creates, %d updates:\n%s", store.VersionCreates.Load(), store.VersionUpdates.Load(), o)
	}
	for k, v := range store.Versions {
		if *v.Properties.PublishingProfile.ExcludeFromLatest {
			t.Errorf("%s still excluded from latest after the release", k)
		}
	}
	for _, tag := range []string{"latest-kvm", "latest-metal"} {
		if !tagExists(t, repo, tag) {
			t.Errorf("%s:%s missing after the release", repo, tag)
		}
	}
	// 4. Again: nothing.
	o = run("release", "osimage-*")
	if store.VersionUpdates.Load() != 2 || strings.Contains(o, "promoting") || strings.Count(o, "nothing to do") < 3 {
		t.Fatalf("a second release did work again:\n%s", o)
	}

	// 5. The manifest: both variants, built, published and released.
	o = run("release", "release.*")
	b, err := os.ReadFile(filepath.Join(out, "release-12.json"))
	if err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	var m release.Manifest
	if err := json.Unmarshal(b, &m); err != nil || len(m.Variants) != 2 {
		t.Fatalf("manifest %v: %s", err, b)
	}
	for _, d := range m.Variants {
		for _, tg := range d.Targets {
			if tg.Published == nil || tg.Released == nil {
				t.Errorf("%s %s: published %v released %v", d.Key, tg.Name, tg.Published, tg.Released)
			}
			if tg.Blob != nil && tg.Blob.MD5 != vhdMD5 {
				t.Errorf("%s: recorded blob MD5 %s, the VHD's %s", d.Key, tg.Blob.MD5, vhdMD5)
			}
		}
	}
	if !regexp.MustCompile(`Every variant of release 12 finished the release stage`).MatchString(o) {
		t.Errorf("the manifest step did not confirm the release:\n%s", o)
	}
}

func blobMD5s(t *testing.T, az *testsvc.Azurite, containerName string) map[string]string {
	t.Helper()
	cl, err := azblob.NewClientFromConnectionString(az.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	pager := cl.NewListBlobsFlatPager(containerName, nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Segment.BlobItems {
			dl, err := cl.DownloadStream(context.Background(), containerName, *it.Name, nil)
			if err != nil {
				t.Fatal(err)
			}
			h := md5.New()
			io.Copy(h, dl.Body)
			dl.Body.Close()
			out[*it.Name] = hex.EncodeToString(h.Sum(nil))
		}
	}
	return out
}

func fileMD5(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

func tagExists(t *testing.T, repo, tag string) bool {
	t.Helper()
	ref, err := name.ParseReference(repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(ref)
	return err == nil
}
