package test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/osimage/packer-plugin-osimage/builder/disk/disktest"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

const supplyChainTemplate = acc.RequiredPlugins + `
variable "src"      { type = string }
variable "out"      { type = string }
variable "key"      { type = string }
variable "registry" { type = string }
variable "storage" {
  type      = string
  sensitive = true
}

source "osimage-disk" "signed" {
  source_image     = var.src
  key              = "signed-x86_64-virtualization"
  arch             = "x86_64"
  platform         = "virtualization"
  output_directory = var.out
}

build {
  sources = ["source.osimage-disk.signed"]
  post-processors {
    post-processor "osimage-vhd" {
      signing_key = var.key
    }
    post-processor "osimage-gallery" {
      storage_connection_string = var.storage
      container                 = "signed"
      create_container          = true
      blob_name                 = "signed.vhd"
    }
  }
  post-processor "osimage-oci" {
    repository  = "${var.registry}/os/signed"
    version     = "1.0"
    signing_key = var.key
  }
}
`

// What ships with an image, through packer: the SBOM osimage-disk reads out
// of the disk's dpkg database, the VHD's detached signature, both uploaded
// next to the blob, and in the registry the SBOM as a referrer and the
// manifest's cosign signature, read back with oras, cosign and a blob
// download.
func TestAnImageShipsWithItsSBOMAndSignatures(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	oras := testutil.NeedBuilt(t, "oras")
	cosign := testutil.NeedBuilt(t, "cosign")
	reg, az := testsvc.StartRegistry(t), testsvc.StartAzurite(t)
	dir := t.TempDir()
	d := disktest.Make(t, dir, "src.raw", disktest.Options{Files: map[string]string{
		"var/lib/dpkg/status": "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b7\n\n",
	}})
	cosignEnv := append(os.Environ(), "HOME="+dir, "COSIGN_PASSWORD=build-key-password")
	gen := exec.Command(cosign, "generate-key-pair")
	gen.Dir, gen.Env = dir, cosignEnv
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "out")
	acc.WriteTemplate(t, dir, "signed.pkr.hcl", supplyChainTemplate)
	r := env.MustRun(t, dir, []string{"COSIGN_PASSWORD=build-key-password"}, "build", "-var", "src="+d.Path, "-var", "out="+out,
		"-var", "key="+filepath.Join(dir, "cosign.key"), "-var", "registry="+reg.Host, "-var", "storage="+az.ConnectionString, ".")
	o := r.Output()
	if strings.Contains(o, "build-key-password") || strings.Contains(o, "PRIVATE KEY") {
		t.Fatal("the key or its password was printed")
	}
	sbomFile := filepath.Join(out, "signed-x86_64-virtualization.spdx.json")
	vhd := filepath.Join(out, "signed-x86_64-virtualization.vhd")
	sbomBytes, err := os.ReadFile(sbomFile)
	if err != nil || !bytes.Contains(sbomBytes, []byte(`"name": "bash"`)) {
		t.Fatalf("SBOM %v:\n%s\n%s", err, sbomBytes, o)
	}

	// Next to the blob: the SBOM and the VHD's signature; the downloaded
	// blob verifies against that signature with cosign.
	cl, err := azblob.NewClientFromConnectionString(az.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	download := func(name string) []byte {
		resp, err := cl.DownloadStream(context.Background(), "signed", name, nil)
		if err != nil {
			t.Fatalf("download %s: %v\n%s", name, err, o)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return b.Bytes()
	}
	if got := download("signed.vhd.spdx.json"); !bytes.Equal(got, sbomBytes) {
		t.Errorf("the SBOM next to the blob differs from the build's")
	}
	blobVHD, sig := filepath.Join(dir, "blob.vhd"), filepath.Join(dir, "blob.vhd.sig")
	os.WriteFile(blobVHD, download("signed.vhd"), 0o644)
	os.WriteFile(sig, download("signed.vhd.sig"), 0o644)
	verify := exec.Command(cosign, "verify-blob", "--key", filepath.Join(dir, "cosign.pub"), "--signature", sig, "--insecure-ignore-tlog=true", blobVHD)
	verify.Env = cosignEnv
	if b, err := verify.CombinedOutput(); err != nil {
		t.Fatalf("cosign verify-blob of the uploaded VHD: %v\n%s", err, b)
	}
	if vb, _ := os.ReadFile(vhd); !bytes.Equal(vb[:1<<20], download("signed.vhd")[:1<<20]) {
		t.Error("the blob is not the VHD")
	}

	// In the registry: the SBOM referrer and the signature.
	m := regexp.MustCompile(`Manifest amd64/virtualization: (\S+@sha256:[0-9a-f]{64})`).FindStringSubmatch(o)
	if m == nil {
		t.Fatalf("no manifest in the output:\n%s", o)
	}
	disc, err := exec.Command(oras, "discover", "--plain-http", "--format", "json", m[1]).Output()
	if err != nil {
		t.Fatalf("oras discover: %v", err)
	}
	var dj map[string][]struct {
		ArtifactType string `json:"artifactType"`
	}
	json.Unmarshal(disc, &dj)
	if refs := append(dj["manifests"], dj["referrers"]...); len(refs) != 1 || refs[0].ArtifactType != "application/spdx+json" {
		t.Fatalf("oras discover: %s", disc)
	}
	cv := exec.Command(cosign, "verify", "--key", filepath.Join(dir, "cosign.pub"), "--insecure-ignore-tlog=true", "--allow-http-registry", "--allow-insecure-registry", m[1])
	cv.Env = cosignEnv
	if b, err := cv.CombinedOutput(); err != nil {
		t.Fatalf("cosign verify %s: %v\n%s", m[1], err, b)
	}
}
