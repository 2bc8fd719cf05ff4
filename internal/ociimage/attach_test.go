package ociimage

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/osimage/packer-plugin-osimage/internal/signing"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// The SBOM goes next to each manifest as an OCI 1.1 referrer that oras
// discover and go-containerregistry's referrers read; the signature is
// cosign's, which the real cosign verifies with the public key and refuses
// for another manifest. Attaching again writes no new signature.
func TestTheSBOMIsAReferrerAndTheSignatureIsOneCosignVerifies(t *testing.T) {
	t.Parallel()
	oras := ociTool(t, "oras")
	cosign := testutil.NeedBuilt(t, "cosign")
	reg := testsvc.StartRegistry(t)
	fx := makeEntries(t, 1<<20)
	p := mustPlan(t, fx.entries, testOptions())
	repo := reg.Host + "/os/signed"
	d := Destination{Repository: repo, LockDir: t.TempDir(), Backoff: &fastBackoff, Settle: time.Millisecond}
	res := mustPublish(t, p, d)
	dir := t.TempDir()
	sbomPath := filepath.Join(dir, "vm.spdx.json")
	os.WriteFile(sbomPath, []byte(`{"spdxVersion":"SPDX-2.3","name":"vm"}`), 0o644)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	signer, err := signing.Load("test", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "cosign.pub")
	os.WriteFile(pub, signer.PublicKeyPEM(), 0o644)

	at := Attachments{SBOM: sbomPath, SBOMMediaType: "application/spdx+json", Signer: signer, Created: "2025-11-30T00:00:00Z"}
	att, err := Attach(context.Background(), d, res.Manifests, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(att.SBOMReferrers) != len(res.Manifests) || len(att.Signatures) != len(res.Manifests) {
		t.Fatalf("attached %+v for %d manifests", att, len(res.Manifests))
	}
	m := res.Manifests[0]
	subject := repo + "@" + m.Digest

	// oras discover: the referrers of the manifest.
	out := run(t, oras, "discover", "--plain-http", "--format", "json", subject)
	var disc struct {
		Manifests []struct {
			ArtifactType string `json:"artifactType"`
			Digest       string `json:"digest"`
		} `json:"manifests"`
		Referrers []struct {
			ArtifactType string `json:"artifactType"`
			Digest       string `json:"digest"`
		} `json:"referrers"`
	}
	if err := json.Unmarshal(out, &disc); err != nil {
		t.Fatalf("oras discover: %v\n%s", err, out)
	}
	found := append(disc.Manifests, disc.Referrers...)
	if len(found) != 1 || found[0].ArtifactType != "application/spdx+json" || repo+"@"+found[0].Digest != att.SBOMReferrers[0] {
		t.Fatalf("oras discover found %+v, want the SBOM referrer %s\n%s", found, att.SBOMReferrers[0], out)
	}
	// go-containerregistry (as crane): the referrer's layer is the SBOM.
	dref, _ := name.NewDigest(subject, name.Insecure)
	idx, err := remote.Referrers(dref)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].ArtifactType != "application/spdx+json" {
		t.Fatalf("referrers %+v", im.Manifests)
	}
	rref, _ := name.NewDigest(repo+"@"+im.Manifests[0].Digest.String(), name.Insecure)
	rimg, err := remote.Image(rref)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := rimg.Layers()
	rc, _ := layers[0].Compressed()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	rc.Close()
	if b.String() != `{"spdxVersion":"SPDX-2.3","name":"vm"}` {
		t.Fatalf("the referrer's layer holds %q", b.String())
	}
	// ironcore-image's layers are untouched: the manifest has its own.
	checkImage(t, subject, manifestOf(p, m.Arch, m.BootMode), remote.WithContext(context.Background()))

	// cosign verify with the public key.
	verify := func(ref string) (string, error) {
		cmd := exec.Command(cosign, "verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-http-registry", "--allow-insecure-registry", ref)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		o, err := cmd.CombinedOutput()
		return string(o), err
	}
	if o, err := verify(subject); err != nil {
		t.Fatalf("cosign verify %s: %v\n%s", subject, err, o)
	}
	// Another manifest carrying this one's signature fails verification.
	if len(res.Manifests) < 2 {
		t.Fatalf("%d manifests: the test needs two", len(res.Manifests))
	}
	{
		other := res.Manifests[1]
		src, _ := name.ParseReference(repo+":"+signing.SignatureTag(m.Digest), name.Insecure)
		dst, _ := name.ParseReference(repo+":"+signing.SignatureTag(other.Digest), name.Insecure)
		img, err := remote.Image(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(dst, img); err != nil {
			t.Fatal(err)
		}
		if o, err := verify(repo + "@" + other.Digest); err == nil {
			t.Fatalf("cosign verified a manifest whose signature is another's:\n%s", o)
		}
	}

	// Again: the same referrer, no new signature.
	att2, err := Attach(context.Background(), d, res.Manifests[:1], at)
	if err != nil || att2.SBOMReferrers[0] != att.SBOMReferrers[0] || len(att2.Signatures) != 0 || len(att2.Unchanged) != 1 {
		t.Fatalf("second attach: %+v %v", att2, err)
	}
}
