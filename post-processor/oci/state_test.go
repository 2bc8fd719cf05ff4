package oci

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/release"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// With a release state: stage publish pushes the version's tags without
// the moving ones and records it; again, nothing; stage release writes
// the moving tag from the arch tags without the disk; again, nothing.
func TestTheReleaseStatePublishesAPreReleaseThenWritesTheMovingTags(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	reg := testsvc.StartRegistry(t)
	dir, stateDir := t.TempDir(), t.TempDir()
	f := diskFile(t, dir)
	run := func(stage string, files []artifact.File) (string, error) {
		v := variant.Variant{Key: "edge-x86_64-virtualization", Image: "edge", Arch: "x86_64", Platform: "virtualization", ReleaseVer: "1.0",
			State: stateDir, Stage: stage, ReleaseName: "edge-1.0-x86_64-virtualization-r0",
			Targets: []variant.Target{{Name: "reg", InterfaceType: variant.InterfaceOCIRegistry, ResourceURN: reg.Host, ImageName: "os/edge"}}}
		in := &artifact.Artifact{Builder: "osimage.builder.state", Variant: v, Outputs: files}
		p := configure(t, map[string]interface{}{"extra_tags": []string{"latest-{{ .Variant }}"}})
		var b strings.Builder
		ui := &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: &b, ErrorWriter: &b, PB: &packersdk.NoopProgressTracker{}}
		_, _, _, err := p.PostProcess(context.Background(), ui, in)
		return b.String(), err
	}
	exists := func(tag string) bool {
		ref, _ := name.ParseReference(reg.Host+"/os/edge:"+tag, name.Insecure)
		_, err := remote.Head(ref)
		return err == nil
	}
	out, err := run("publish", []artifact.File{f})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !exists("1.0-kvm") || !exists("1.0-kvm-amd64") || exists("latest-kvm") || !strings.Contains(out, "a pre-release (stage publish)") {
		t.Fatalf("after publish: 1.0-kvm %v, latest-kvm %v\n%s", exists("1.0-kvm"), exists("latest-kvm"), out)
	}
	ref := release.Ref{Store: release.Dir{Root: stateDir}, Release: "1.0", Key: "edge-x86_64-virtualization"}
	c, _ := release.Select(context.Background(), ref, "edge", -1)
	if c.Doc == nil || len(c.Doc.Targets) != 1 || c.Doc.Targets[0].Published == nil || c.Doc.Targets[0].Released != nil {
		t.Fatalf("recorded: %+v", c.Doc)
	}
	o := c.Doc.Targets[0].OCI
	if o == nil || o.Repository != reg.Host+"/os/edge" || len(o.Manifests) != 1 || o.Manifests[0].Platform != "virtualization" || len(o.Indexes) == 0 || len(o.MovingTags) != 0 {
		t.Fatalf("recorded OCI: %+v", o)
	}
	out, err = run("publish", nil)
	if err != nil || !strings.Contains(out, "already published (release state") {
		t.Fatalf("second publish: %v\n%s", err, out)
	}
	// The release, without the disk.
	out, err = run("release", nil)
	if err != nil || !exists("latest-kvm") || !strings.Contains(out, "promoting") {
		t.Fatalf("release: %v, latest-kvm %v\n%s", err, exists("latest-kvm"), out)
	}
	latest, _ := name.ParseReference(reg.Host+"/os/edge:latest-kvm", name.Insecure)
	idx, err := remote.Index(latest)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != o.Manifests[0].Digest {
		t.Fatalf("latest-kvm holds %+v, want the published manifest %s", im.Manifests, o.Manifests[0].Digest)
	}
	c, _ = release.Select(context.Background(), ref, "edge", -1)
	if tg := c.Doc.Targets[0]; tg.Released == nil || len(tg.OCI.MovingTags) != 1 || tg.OCI.MovingTags[0] != "latest-kvm" {
		t.Fatalf("recorded after release: %+v %+v", tg, tg.OCI)
	}
	out, err = run("release", nil)
	if err != nil || !strings.Contains(out, "already published and released") {
		t.Fatalf("second release: %v\n%s", err, out)
	}
}
