package disk

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// matrixVariant is one element of the osimage-matrix datasource's variants
// as `jsonencode(source.value)` writes it: delivery as a JSON string,
// capabilities as strings.
func matrixVariant(t *testing.T, kiwiFile string) string {
	t.Helper()
	v := map[string]any{
		"key": "vm-base-aarch64-baremetal", "image": "vm-base", "description": "VM", "distro": "azl",
		"distro_version": "4.0", "release_ver": "4.0.20261130", "arch": "arm64", "oci_arch": "arm64", "azure_arch": "Arm64",
		"platform": "metal", "hyperv_generation": "", "firmware": "", "definition_type": "kiwi",
		"definition_path": kiwiFile, "profiles": []string{"vm-base-arm"},
		"dimensions":     map[string]string{"arch": "aarch64", "cloud": "azure"},
		"capabilities":   map[string]string{"machine-bootable": "true", "container": "false"},
		"publish_labels": []string{"base-vm"}, "publish_channels": []string{},
		"targets": []map[string]string{{"name": "acg", "interface_type": "azure-compute-gallery", "backend": "acg",
			"resource_urn": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/azl", "image_name": "azl4-arm64"},
			{"name": "acr", "interface_type": "oci-registry", "backend": "acr", "resource_urn": "example.azurecr.io", "image_name": "azl/vm"}},
		"unresolved": []string{"delivery.shared_gallery.image_version"},
		"delivery":   `{"shared_gallery":{"image_version":null,"publisher":"P"}}`,
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPrepareTakesEveryFieldAndTheKiwiDefinitionFromTheVariant(t *testing.T) {
	desc := description(t, "vm-base.kiwi")
	kiwiFile := filepath.Join(desc, "vm-base.kiwi")
	c := mustPrepare(t, map[string]interface{}{
		"variant": matrixVariant(t, kiwiFile),
		"kiwi":    map[string]interface{}{},
	})
	if c.Kiwi.Description != desc || c.kiwiFile != "vm-base.kiwi" || !slices.Equal(c.Kiwi.Profiles, []string{"vm-base-arm"}) {
		t.Errorf("kiwi from the variant: description %s, file %s, profiles %v", c.Kiwi.Description, c.kiwiFile, c.Kiwi.Profiles)
	}
	if c.Key != "vm-base-aarch64-baremetal" || c.Arch != "aarch64" || c.Platform != "baremetal" || c.Firmware != "uefi" ||
		c.Image != "vm-base" || c.DistroVersion != "4.0" || c.diskName != "vm-base-aarch64-baremetal.raw" || !c.wantBootFiles() {
		t.Errorf("fields from the variant: %+v", c)
	}
	v := c.variant
	if v.ReleaseVer != "4.0.20261130" || len(v.Targets) != 2 || v.Targets[0].ResourceURN == "" ||
		v.DeliveryString("shared_gallery.publisher") != "P" || v.Dimensions["cloud"] != "azure" ||
		!v.Capabilities["machine-bootable"] || v.Capabilities["container"] || v.OCIArch != "arm64" || v.AzureArch != "Arm64" {
		t.Errorf("the whole variant is not carried: %+v", v)
	}
}

func TestPrepareLetsExplicitFieldsWinOverTheVariant(t *testing.T) {
	desc := description(t, "vm-base.kiwi")
	other := description(t, "config.xml")
	c := mustPrepare(t, map[string]interface{}{
		"variant":  matrixVariant(t, filepath.Join(desc, "vm-base.kiwi")),
		"key":      "mine",
		"arch":     "x86_64",
		"platform": "virtualization",
		"kiwi":     map[string]interface{}{"description": other, "profiles": []string{"p2"}},
	})
	if c.Kiwi.Description != other || c.kiwiFile != "" || !slices.Equal(c.Kiwi.Profiles, []string{"p2"}) {
		t.Errorf("kiwi block overridden by the variant: %+v (file %q)", c.Kiwi, c.kiwiFile)
	}
	if c.Key != "mine" || c.Arch != "x86_64" || c.Platform != "virtualization" || c.wantBootFiles() {
		t.Errorf("explicit fields lost: key %s arch %s platform %s", c.Key, c.Arch, c.Platform)
	}
	if v := c.variant; v.Key != "mine" || v.Arch != "x86_64" || v.OCIArch != "amd64" || v.AzureArch != "x64" || v.Image != "vm-base" {
		t.Errorf("artifact variant does not show the explicit values: %+v", v)
	}
}

func TestPrepareRejectsAVariantThatIsNotOne(t *testing.T) {
	src := someFile(t)
	for name, tc := range map[string]struct {
		value string
		parts []string
	}{
		"malformed":      {`{"key": "a",`, []string{"variant", "malformed JSON"}},
		"no key":         {`{"arch": "x86_64"}`, []string{"variant", `no "key"`, "osimage-matrix"}},
		"not an object":  {`["a"]`, []string{"variant", "JSON object"}},
		"wrong type":     {`{"key": "a", "profiles": "p"}`, []string{"variant.profiles"}},
		"unknown arch":   {`{"key": "a", "arch": "sparc"}`, []string{"variant", "sparc", "aarch64"}},
		"bad capability": {`{"key": "a", "capabilities": {"x": "maybe"}}`, []string{"capabilities.x", "maybe"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := prepare(t, map[string]interface{}{"source_image": src, "variant": tc.value})
			wantErr(t, err, tc.parts...)
		})
	}
}

func TestPrepareWithoutAVariantNeedsAKiwiDescription(t *testing.T) {
	_, err := prepare(t, map[string]interface{}{"kiwi": map[string]interface{}{}})
	wantErr(t, err, "kiwi.description is required")
}

// An image without a definition in the TOML (its disks come from
// elsewhere) built with kiwi {} by mistake: the error names the variant.
func TestKiwiForAVariantWithoutADefinitionNamesTheVariant(t *testing.T) {
	_, err := prepare(t, map[string]interface{}{"kiwi": map[string]interface{}{},
		"variant": `{"key":"edge-x86_64-virtualization","image":"edge","arch":"x86_64","platform":"virtualization"}`})
	wantErr(t, err, "kiwi.description is required", "variant edge-x86_64-virtualization has no definition", "set source_image")
}

func TestTheArtifactCarriesTheVariantFromTheMatrixWhole(t *testing.T) {
	desc := description(t, "vm-base.kiwi")
	raw := matrixVariant(t, filepath.Join(desc, "vm-base.kiwi"))
	want, err := variant.Parse("variant", raw)
	if err != nil {
		t.Fatal(err)
	}
	src := someFile(t)
	var b Builder
	if _, _, err := b.Prepare(map[string]interface{}{"packer_build_name": "t", "source_image": src, "variant": raw,
		"boot_files": "never", "output_directory": filepath.Join(t.TempDir(), "o")}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b.config.variant, *want) {
		t.Errorf("variant changed on the way:\n got %+v\nwant %+v", b.config.variant, *want)
	}
	gd := b.config.generated()
	if gd["ReleaseVer"] != "4.0.20261130" || gd["Arch"] != "aarch64" || gd["OCIArch"] != "arm64" || gd["Key"] != want.Key {
		t.Errorf("generated data lacks the variant: %v", gd)
	}
	os.Remove(src)
}
