package gallery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
)

var testGallery = Gallery{SubscriptionID: "sub", ResourceGroup: "rg", Name: "osimage", Location: "westeurope"}

var blob = Source{StorageAccountID: "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
	URI: "https://acct.blob.core.windows.net/disks/alma-9.6.vhd"}

// newStore is an empty gallery in westeurope whose subscription holds the
// storage account of blob, in the same region.
func newStore() *armfake.Store {
	s := armfake.New()
	s.PutStorageAccount(blob.StorageAccountID, "westeurope")
	return s
}

func client(t *testing.T, s *armfake.Store) Client {
	t.Helper()
	c, err := NewARM("sub", &azfake.TokenCredential{}, &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: s.Transport()}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fastOpts(t *testing.T) Options {
	return Options{PollFrequency: 5 * time.Millisecond, StateDir: t.TempDir(), ForceOption: "force = true"}
}

func almaRequest(arch string, gens ...string) Publish {
	eol := time.Date(2030, 5, 31, 0, 0, 0, 0, time.UTC)
	return Publish{
		Gallery: testGallery, Arch: arch, Asked: gens,
		Definitions: map[string]DefinitionSpec{
			"V1": {Name: "almalinux-9-gen1", Identifier: Identifier{"almalinux", "almalinux-x86_64", "9-gen1"}},
			"V2": {Name: "almalinux-9-gen2", Identifier: Identifier{"almalinux", "almalinux-x86_64", "9-gen2"}},
		},
		SecurityType: "TrustedLaunchSupported", AcceleratedNetworking: true,
		Version: "9.6.2025052201", Source: blob,
		Regions:            []Region{{Name: "eastus", Replicas: 2, StorageAccountType: "Standard_ZRS"}, {Name: "westus2", Replicas: 1}},
		StorageAccountType: "Standard_LRS", ExcludeFromLatest: true, EndOfLifeDate: &eol,
	}
}

func publish(t *testing.T, c Client, p Plan, o Options) (Result, error) {
	t.Helper()
	st, err := Check(context.Background(), c, p, o)
	if err != nil {
		return Result{}, err
	}
	return Apply(context.Background(), c, st, o)
}

func feature(d armcompute.GalleryImage, name string) string {
	for _, f := range d.Properties.Features {
		if *f.Name == name {
			return *f.Value
		}
	}
	return ""
}

func TestPublishCreatesMissingDefinitionsAndGen1AndGen2VersionsFromOneBlob(t *testing.T) {
	s := newStore()
	p, err := Build(almaRequest("x86_64", "V1", "V2"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := publish(t, client(t, s), p, fastOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.DefinitionCreates.Load() != 2 || s.VersionCreates.Load() != 2 || len(res.CreatedDefinitions) != 2 {
		t.Fatalf("creates: %d definitions, %d versions", s.DefinitionCreates.Load(), s.VersionCreates.Load())
	}
	for gen, name := range map[string]string{"V1": "almalinux-9-gen1", "V2": "almalinux-9-gen2"} {
		d, _ := s.Definition(name)
		pr := d.Properties
		if *pr.HyperVGeneration != armcompute.HyperVGeneration(gen) || *pr.Architecture != armcompute.ArchitectureX64 ||
			*pr.OSType != armcompute.OperatingSystemTypesLinux || *pr.OSState != armcompute.OperatingSystemStateTypesGeneralized ||
			*pr.Identifier.SKU != strings.ToLower("9-gen"+gen[1:]) || *d.Location != "westeurope" {
			t.Errorf("definition %s: %+v", name, pr)
		}
		wantSec := ""
		if gen == "V2" {
			wantSec = "TrustedLaunchSupported"
		}
		wantDC := map[string]string{"V1": "", "V2": "SCSI, NVMe"}[gen] // NVMe needs V2
		if feature(d, "SecurityType") != wantSec || feature(d, "DiskControllerTypes") != wantDC || feature(d, "IsAcceleratedNetworkSupported") != "True" {
			t.Errorf("definition %s features %v", name, pr.Features)
		}
		v, ok := s.Version(name, "9.6.2025052201")
		if !ok {
			t.Fatalf("no version in %s", name)
		}
		src := v.Properties.StorageProfile.OSDiskImage.Source
		pp := v.Properties.PublishingProfile
		if *src.URI != blob.URI || *src.StorageAccountID != blob.StorageAccountID || src.ID != nil {
			t.Errorf("version source %+v", src)
		}
		if pp.ReplicationMode != nil || !*pp.ExcludeFromLatest || !pp.EndOfLifeDate.Equal(*almaRequest("x86_64").EndOfLifeDate) ||
			*pp.StorageAccountType != armcompute.StorageAccountTypeStandardLRS {
			t.Errorf("publishing profile %+v", pp)
		}
		var regions []string
		for _, r := range pp.TargetRegions {
			regions = append(regions, *r.Name)
		}
		if strings.Join(regions, ",") != "westeurope,eastus,westus2" || *pp.TargetRegions[1].RegionalReplicaCount != 2 ||
			*pp.TargetRegions[1].StorageAccountType != armcompute.StorageAccountTypeStandardZRS || pp.TargetRegions[2].StorageAccountType != nil {
			t.Errorf("target regions %v", regions)
		}
		if *v.Properties.ProvisioningState != armcompute.GalleryProvisioningStateSucceeded {
			t.Errorf("version state %s", *v.Properties.ProvisioningState)
		}
	}
	if len(res.Versions) != 2 || res.Versions[0].HyperVGeneration != "V1" || !strings.HasSuffix(res.Versions[1].ID, "/galleries/osimage/images/almalinux-9-gen2/versions/9.6.2025052201") ||
		strings.Join(res.Versions[0].Regions, ",") != "westeurope,eastus,westus2" {
		t.Fatalf("result %+v", res.Versions)
	}

	// Run again: everything exists with the same source, nothing is sent.
	res, err = publish(t, client(t, s), p, fastOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.DefinitionCreates.Load() != 2 || s.VersionCreates.Load() != 2 || res.Versions[0].Action != ActSkip || len(res.Requests) != 0 {
		t.Fatalf("second run changed something: %+v", res)
	}
}

func TestAarch64IsPublishedAsGen2Only(t *testing.T) {
	r := almaRequest("aarch64")
	r.Definitions = map[string]DefinitionSpec{"V2": {Name: "almalinux-9-arm64", Identifier: Identifier{"almalinux", "almalinux-arm", "9-arm64"}}}
	p, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	s := newStore()
	if _, err := publish(t, client(t, s), p, fastOpts(t)); err != nil {
		t.Fatal(err)
	}
	d, ok := s.Definition("almalinux-9-arm64")
	if !ok || *d.Properties.Architecture != armcompute.ArchitectureArm64 || *d.Properties.HyperVGeneration != armcompute.HyperVGenerationV2 || len(s.Definitions) != 1 {
		t.Fatalf("definitions %v", s.Definitions)
	}
	r.Asked = []string{"V1", "V2"}
	if _, err := Build(r); err == nil || !strings.Contains(err.Error(), "Arm64 images as V2 only") {
		t.Fatalf("aarch64 V1: %v", err)
	}
	if _, err := Build(almaRequest("riscv64")); err == nil || !strings.Contains(err.Error(), `"riscv64"`) {
		t.Fatalf("riscv64: %v", err)
	}
	x := almaRequest("x86_64", "gen1")
	delete(x.Definitions, "V1")
	if _, err := Build(x); err == nil || !strings.Contains(err.Error(), "no image definition name for x86_64 V1") {
		t.Fatalf("missing name: %v", err)
	}
}

func TestAnExistingDefinitionThatDiffersStopsThePublishBeforeAnyChange(t *testing.T) {
	for _, c := range []struct {
		name  string
		props armcompute.GalleryImageProperties
		want  string
	}{
		{"generation", armcompute.GalleryImageProperties{OSType: ptr(armcompute.OperatingSystemTypesLinux), OSState: ptr(armcompute.OperatingSystemStateTypesGeneralized), HyperVGeneration: ptr(armcompute.HyperVGenerationV2)}, "hyperv generation V2, but this image needs V1"},
		{"generation unset means V1", armcompute.GalleryImageProperties{OSType: ptr(armcompute.OperatingSystemTypesLinux), OSState: ptr(armcompute.OperatingSystemStateTypesGeneralized)}, ""},
		{"architecture", armcompute.GalleryImageProperties{OSType: ptr(armcompute.OperatingSystemTypesLinux), OSState: ptr(armcompute.OperatingSystemStateTypesGeneralized), HyperVGeneration: ptr(armcompute.HyperVGenerationV1), Architecture: ptr(armcompute.ArchitectureArm64)}, "architecture Arm64, but this image needs x64"},
		{"os type", armcompute.GalleryImageProperties{OSType: ptr(armcompute.OperatingSystemTypesWindows), OSState: ptr(armcompute.OperatingSystemStateTypesGeneralized), HyperVGeneration: ptr(armcompute.HyperVGenerationV1)}, "OS type Windows"},
		{"os state", armcompute.GalleryImageProperties{OSType: ptr(armcompute.OperatingSystemTypesLinux), OSState: ptr(armcompute.OperatingSystemStateTypesSpecialized), HyperVGeneration: ptr(armcompute.HyperVGenerationV1)}, "OS state Specialized"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStore()
			s.PutDefinition("almalinux-9-gen1", armcompute.GalleryImage{Location: ptr("westeurope"), Properties: ptr(c.props)})
			p, _ := Build(almaRequest("x86_64", "V1", "V2"))
			_, err := Check(context.Background(), client(t, s), p, fastOpts(t))
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var me *MismatchError
			if !errors.As(err, &me) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "almalinux-9-gen1") {
				t.Fatalf("want mismatch %q, got %v", c.want, err)
			}
			if s.DefinitionCreates.Load()+s.VersionCreates.Load() != 0 {
				t.Fatal("check changed the gallery")
			}
		})
	}
}

func existingVersion(uri string) armcompute.GalleryImageVersion {
	return armcompute.GalleryImageVersion{Location: ptr("westeurope"), Properties: &armcompute.GalleryImageVersionProperties{
		ProvisioningState: ptr(armcompute.GalleryProvisioningStateSucceeded),
		StorageProfile: &armcompute.GalleryImageVersionStorageProfile{OSDiskImage: &armcompute.GalleryOSDiskImage{
			Source: &armcompute.GalleryDiskImageSource{URI: ptr(uri), StorageAccountID: ptr(blob.StorageAccountID)}}}}}
}

func TestAnExistingVersionIsSkippedWhenSameRefusedWhenDifferentAndReplacedWithForce(t *testing.T) {
	s := newStore()
	p, _ := Build(almaRequest("x86_64", "V1", "V2"))
	if _, err := publish(t, client(t, s), p, fastOpts(t)); err != nil {
		t.Fatal(err)
	}
	// Same blob, another letter case and a SAS: the same source.
	same := p
	same.Versions = append([]Version(nil), p.Versions...)
	same.Versions[0].Source.URI = strings.ToUpper(blob.URI[:8]) + blob.URI[8:] + "?sv=x&sig=y"
	res, err := publish(t, client(t, s), same, fastOpts(t))
	if err != nil || res.Versions[0].Action != ActSkip || s.VersionCreates.Load() != 2 {
		t.Fatalf("same source: %+v %v", res, err)
	}
	other := p
	other.Versions = append([]Version(nil), p.Versions...)
	for i := range other.Versions {
		other.Versions[i].Source.URI = "https://acct.blob.core.windows.net/disks/other.vhd"
	}
	_, err = publish(t, client(t, s), other, fastOpts(t))
	var ve *VersionExistsError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "force = true") || !strings.Contains(err.Error(), "alma-9.6.vhd") {
		t.Fatalf("different source: %v", err)
	}
	if s.VersionDeletes.Load() != 0 || s.VersionCreates.Load() != 2 {
		t.Fatal("a refused publish changed the gallery")
	}
	o := fastOpts(t)
	o.Force = true
	res, err = publish(t, client(t, s), other, o)
	if err != nil {
		t.Fatal(err)
	}
	if s.VersionDeletes.Load() != 2 || s.VersionCreates.Load() != 4 || res.Versions[0].Action != ActReplace {
		t.Fatalf("force: deletes %d creates %d %+v", s.VersionDeletes.Load(), s.VersionCreates.Load(), res.Versions)
	}
	v, _ := s.Version("almalinux-9-gen1", p.Versions[0].Name)
	if *v.Properties.StorageProfile.OSDiskImage.Source.URI != "https://acct.blob.core.windows.net/disks/other.vhd" {
		t.Fatal("version not recreated from the new source")
	}
}

func TestDryRunPrintsEveryRequestAndChangesNothing(t *testing.T) {
	s := newStore()
	s.PutDefinition("almalinux-9-gen2", armcompute.GalleryImage{Location: ptr("westeurope"), Properties: &armcompute.GalleryImageProperties{
		OSType: ptr(armcompute.OperatingSystemTypesLinux), OSState: ptr(armcompute.OperatingSystemStateTypesGeneralized), HyperVGeneration: ptr(armcompute.HyperVGenerationV2)}})
	s.PutVersion("almalinux-9-gen2", "9.6.2025052201", existingVersion("https://acct.blob.core.windows.net/disks/old.vhd"))
	p, _ := Build(almaRequest("x86_64", "V1", "V2"))
	var lines []string
	o := fastOpts(t)
	o.DryRun, o.Force = true, true
	o.Logf = func(f string, a ...any) { lines = append(lines, f) }
	res, err := publish(t, client(t, s), p, o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || s.DefinitionCreates.Load()+s.VersionCreates.Load()+s.VersionDeletes.Load() != 0 {
		t.Fatal("dry run changed the gallery")
	}
	var got []string
	for _, r := range res.Requests {
		got = append(got, r.Method+" "+r.Path[strings.Index(r.Path, "/images/"):])
	}
	want := []string{
		"PUT /images/almalinux-9-gen1?api-version=2025-12-03",
		"PUT /images/almalinux-9-gen1/versions/9.6.2025052201?api-version=2025-12-03",
		"DELETE /images/almalinux-9-gen2/versions/9.6.2025052201?api-version=2025-12-03",
		"PUT /images/almalinux-9-gen2/versions/9.6.2025052201?api-version=2025-12-03",
	}
	joined := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("dry run lacks %q:\n%s", w, joined)
		}
	}
	if len(got) != len(want) {
		t.Errorf("dry run requests:\n%s", joined)
	}
	for _, r := range res.Requests {
		if r.Method == "PUT" && strings.Contains(r.Path, "/versions/") && !strings.Contains(r.Body, blob.URI) {
			t.Errorf("version body lacks the blob: %s", r.Body)
		}
	}
	if len(lines) < len(want) {
		t.Errorf("only %d lines logged", len(lines))
	}
}

func TestAKilledRunResumesPollingInsteadOfCreatingAgain(t *testing.T) {
	s := newStore()
	s.PendingPolls = 40
	r := almaRequest("x86_64")
	p, _ := Build(r)
	o := fastOpts(t)
	o.PollFrequency = 20 * time.Millisecond
	o.Timeout = 100 * time.Millisecond
	_, err := publish(t, client(t, s), p, o)
	tok := filepath.Join(o.StateDir, "gallery-osimage-almalinux-9-gen2-9.6.2025052201.resume")
	if err == nil || !strings.Contains(err.Error(), "still being created") || !strings.Contains(err.Error(), tok) {
		t.Fatalf("want a timeout naming the token file, got %v", err)
	}
	if _, err := os.Stat(tok); err != nil {
		t.Fatalf("resume token not kept: %v", err)
	}
	o.Timeout = time.Minute
	var lines []string
	o.Logf = func(f string, a ...any) { lines = append(lines, f) }
	res, err := publish(t, client(t, s), p, o)
	if err != nil {
		t.Fatal(err)
	}
	if s.VersionCreates.Load() != 1 || res.Versions[0].Action != ActResume {
		t.Fatalf("second run: %d creates, action %s", s.VersionCreates.Load(), res.Versions[0].Action)
	}
	if _, err := os.Stat(tok); !os.IsNotExist(err) {
		t.Fatal("token file left after success")
	}
	if v, _ := s.Version("almalinux-9-gen2", r.Version); *v.Properties.ProvisioningState != armcompute.GalleryProvisioningStateSucceeded {
		t.Fatal("version not finished")
	}
}

func TestAFailedCreationReportsTheServiceError(t *testing.T) {
	s := newStore()
	s.FailVersion = "OperationNotAllowed"
	p, _ := Build(almaRequest("x86_64"))
	o := fastOpts(t)
	_, err := publish(t, client(t, s), p, o)
	if err == nil || !strings.Contains(err.Error(), "OperationNotAllowed") || !strings.Contains(err.Error(), "9.6.2025052201 of almalinux-9-gen2") {
		t.Fatalf("got %v", err)
	}
}

func TestExistingVersionsFindsTheVersionOfTheSameBlob(t *testing.T) {
	s := newStore()
	s.PutVersion("almalinux-9-gen1", "9.6.2025052201", existingVersion("https://acct.blob.core.windows.net/disks/a.vhd"))
	s.PutVersion("almalinux-9-gen2", "9.6.2025052203", existingVersion(blob.URI))
	names, same, err := ExistingVersions(context.Background(), client(t, s), testGallery, []string{"almalinux-9-gen1", "almalinux-9-gen2", "missing"}, blob)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "9.6.2025052201,9.6.2025052203" || same != "9.6.2025052203" {
		t.Fatalf("names %v same %q", names, same)
	}
	v, err := DateVersion("9.6", time.Date(2025, 5, 22, 23, 0, 0, 0, time.UTC), names)
	if err != nil || v != "9.6.2025052204" {
		t.Fatalf("next version %q %v", v, err)
	}
}

func TestGalleryLocationIsReadFromTheGallery(t *testing.T) {
	s := newStore()
	s.Location = "northeurope"
	if loc, err := client(t, s).GalleryLocation(context.Background(), testGallery); err != nil || loc != "northeurope" {
		t.Fatalf("%q %v", loc, err)
	}
	s.Location = ""
	if _, err := client(t, s).GalleryLocation(context.Background(), testGallery); err == nil {
		t.Fatal("a missing gallery has a location")
	}
}

func TestAStaleResumeTokenOfAFinishedVersionIsDroppedNotResumed(t *testing.T) {
	s := newStore()
	p, _ := Build(almaRequest("x86_64"))
	o := fastOpts(t)
	if _, err := publish(t, client(t, s), p, o); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(o.StateDir, "gallery-osimage-almalinux-9-gen2-9.6.2025052201.resume")
	if err := os.WriteFile(tok, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := publish(t, client(t, s), p, o)
	if err != nil || res.Versions[0].Action != ActSkip || s.VersionCreates.Load() != 1 {
		t.Fatalf("finished version with a stale token: %+v %v", res.Versions, err)
	}
	if _, err := os.Stat(tok); !os.IsNotExist(err) {
		t.Fatal("stale token kept")
	}
}

func TestAFailedDefinitionCreationReportsTheServiceErrorAndCreatesNoVersion(t *testing.T) {
	s := newStore()
	s.FailDefinition = "InvalidParameter"
	p, _ := Build(almaRequest("x86_64"))
	_, err := publish(t, client(t, s), p, fastOpts(t))
	if err == nil || !strings.Contains(err.Error(), "create gallery image definition almalinux-9-gen2") || !strings.Contains(err.Error(), "InvalidParameter") {
		t.Fatalf("got %v", err)
	}
	if s.VersionCreates.Load() != 0 {
		t.Fatal("a version was created in a definition that failed")
	}
}

func TestAFailedDeleteUnderForceReportsTheServiceErrorAndCreatesNothing(t *testing.T) {
	s := newStore()
	p, _ := Build(almaRequest("x86_64"))
	if _, err := publish(t, client(t, s), p, fastOpts(t)); err != nil {
		t.Fatal(err)
	}
	other := p
	other.Versions = append([]Version(nil), p.Versions...)
	other.Versions[0].Source.URI = "https://acct.blob.core.windows.net/disks/other.vhd"
	s.FailDelete = "Conflict"
	o := fastOpts(t)
	o.Force = true
	_, err := publish(t, client(t, s), other, o)
	if err == nil || !strings.Contains(err.Error(), "delete image version 9.6.2025052201 of almalinux-9-gen2 to replace it") || !strings.Contains(err.Error(), "Conflict") {
		t.Fatalf("got %v", err)
	}
	if s.VersionCreates.Load() != 1 {
		t.Fatalf("%d creates: a version was created over one that could not be deleted", s.VersionCreates.Load())
	}
}

func TestOptionDefaultsFillZeroAndNegativeValuesOnly(t *testing.T) {
	for _, o := range []Options{{}, {Timeout: -1, PollFrequency: -1}} {
		o.defaults()
		if o.Timeout != 60*time.Minute || o.PollFrequency != 30*time.Second || o.ForceOption != "Options.Force" || o.Logf == nil {
			t.Errorf("defaults: %+v", o)
		}
	}
	o := Options{Timeout: time.Minute, PollFrequency: 2 * time.Second, ForceOption: "force = true"}
	o.defaults()
	if o.Timeout != time.Minute || o.PollFrequency != 2*time.Second || o.ForceOption != "force = true" {
		t.Errorf("given values replaced: %+v", o)
	}
}

func TestCreatedDefinitionsCarryDescriptionAndEULAOnlyWhenGiven(t *testing.T) {
	d := Definition{Name: "d", HyperVGeneration: "V2", Architecture: "x64", Description: "AlmaLinux 9", EULA: "https://example.org/eula"}
	b := definitionBody(testGallery, d)
	if b.Properties.Description == nil || *b.Properties.Description != "AlmaLinux 9" || b.Properties.Eula == nil || *b.Properties.Eula != "https://example.org/eula" {
		t.Fatalf("given: %+v", b.Properties)
	}
	d.Description, d.EULA = "", ""
	if b := definitionBody(testGallery, d); b.Properties.Description != nil || b.Properties.Eula != nil {
		t.Fatalf("not given: description %v eula %v", b.Properties.Description, b.Properties.Eula)
	}
}
