package gallery

import (
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery"
	"github.com/osimage/packer-plugin-osimage/internal/azure/pageblob"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

func TestArtifactStringNamesTheBlobItsMD5AndEachVersionWithItsRegions(t *testing.T) {
	in := &artifact.Artifact{Variant: variant.Variant{Key: "alma-9-x86_64"}, Outputs: []artifact.File{{Path: "/o/disk.raw", Role: artifact.RoleDisk}}}
	p := &PostProcessor{}
	res := gallery.Result{Versions: []gallery.Published{
		{Definition: "alma-gen1", Version: "9.6.1", HyperVGeneration: "V1", ID: galleryID + "/images/alma-gen1/versions/9.6.1", Regions: []string{"westeurope", "eastus"}, Action: "create"},
		{Definition: "alma-gen2", Version: "9.6.1", HyperVGeneration: "V2", ID: galleryID + "/images/alma-gen2/versions/9.6.1", Regions: []string{"westeurope"}, Action: "skip"},
	}}
	up := pageblob.Result{URL: "https://acct.blob.core.windows.net/c/alma.vhd?sv=1&sig=SECRET", Size: 1, MD5Hex: "0123456789abcdef0123456789abcdef"}
	got := p.artifactOut(in, in.Outputs[0], up, res, nil).String()
	for _, want := range []string{"Variant alma-9-x86_64", "published:",
		"\n  blob     https://acct.blob.core.windows.net/c/alma.vhd (MD5 0123456789abcdef0123456789abcdef)",
		"\n  V1       " + galleryID + "/images/alma-gen1/versions/9.6.1 (create; regions westeurope, eastus)",
		"\n  V2       " + galleryID + "/images/alma-gen2/versions/9.6.1 (skip; regions westeurope)"} {
		if !strings.Contains(got, want) {
			t.Errorf("String() lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "SECRET") || strings.Contains(got, "sig=") {
		t.Errorf("String() holds the SAS:\n%s", got)
	}
	p.config.DryRun = true
	up.Reused = true
	got = p.artifactOut(in, in.Outputs[0], up, gallery.Result{}, nil).String()
	if !strings.Contains(got, "dry run, not published:") || !strings.Contains(got, ", reused)") {
		t.Errorf("dry run:\n%s", got)
	}
}
