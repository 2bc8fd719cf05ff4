package gallery

import (
	"context"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
)

func TestShallowReplicationIsOnlyTheGallerysRegionWithOneReplica(t *testing.T) {
	for name, c := range map[string]struct {
		regions []Region
		want    string
	}{
		"another region":   {[]Region{{Name: "eastus", Replicas: 1}}, "shallow replication: only the gallery's region westeurope with 1 replica; got westeurope (1 replica), eastus (1 replica)"},
		"two replicas":     {[]Region{{Name: "West Europe", Replicas: 2}}, "got West Europe (2 replicas)"},
		"the gallery only": {nil, ""},
		"named, 1 replica": {[]Region{{Name: "westeurope", Replicas: 1}}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := almaRequest("x86_64")
			r.Regions, r.Shallow = c.regions, true
			_, err := Build(r)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	// The stand-in refuses what gets through, as Azure does.
	s := newStore()
	r := almaRequest("x86_64")
	r.Regions, r.Shallow = []Region{{Name: "westeurope", Replicas: 1}}, true
	p, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	p.Versions[0].Regions = []Region{{Name: "eastus", Replicas: 3}}
	st := unchecked(p) // past Validate
	if _, err := Apply(context.Background(), client(t, s), st, fastOpts(t)); err == nil || !strings.Contains(err.Error(), "InvalidParameter") || !strings.Contains(err.Error(), "shallow") {
		t.Fatalf("armfake took shallow replication to 2 regions: %v", err)
	}
}

func TestNVMeIsForV2DefinitionsOnly(t *testing.T) {
	r := almaRequest("x86_64", "V1", "V2")
	r.DiskControllerTypes = ""
	p, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range p.Definitions {
		want := map[string]string{"V1": "", "V2": "SCSI, NVMe"}[d.HyperVGeneration]
		if d.DiskControllerTypes != want {
			t.Errorf("%s: disk controller types %q, want %q", d.HyperVGeneration, d.DiskControllerTypes, want)
		}
	}
	r.DiskControllerTypes = "SCSI, NVMe"
	if _, err := Build(r); err == nil || !strings.Contains(err.Error(), "definition almalinux-9-gen1: disk controller NVMe needs hyperv generation V2") {
		t.Fatalf("explicit NVMe on V1: %v", err)
	}
	r.DiskControllerTypes = "SCSI"
	if p, err := Build(r); err != nil || p.Definitions[0].DiskControllerTypes != "SCSI" || p.Definitions[1].DiskControllerTypes != "SCSI" {
		t.Fatalf("SCSI: %+v %v", p.Definitions, err)
	}
	r.DiskControllerTypes = "SCSI, IDE"
	if _, err := Build(r); err == nil || !strings.Contains(err.Error(), `disk controller type "IDE"`) {
		t.Fatalf("IDE: %v", err)
	}
	// The stand-in refuses a V1 definition with NVMe.
	s := newStore()
	r.DiskControllerTypes = ""
	p, _ = Build(r)
	p.Definitions[0].DiskControllerTypes = "SCSI, NVMe"
	st := unchecked(p) // past Validate
	if _, err := Apply(context.Background(), client(t, s), st, fastOpts(t)); err == nil || !strings.Contains(err.Error(), "NVMe") {
		t.Fatalf("armfake took NVMe on V1: %v", err)
	}
	if _, ok := s.Definition("almalinux-9-gen1"); ok {
		t.Fatal("the refused definition was stored")
	}
}

func TestSecurityTypeIsOneOfTheAPIs(t *testing.T) {
	r := almaRequest("x86_64")
	for _, ok := range SecurityTypes {
		r.SecurityType = ok
		if _, err := Build(r); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	r.SecurityType = "TrustedLaunchSupport"
	if _, err := Build(r); err == nil || !strings.Contains(err.Error(), `security type "TrustedLaunchSupport": want one of Standard, TrustedLaunchSupported`) {
		t.Fatalf("got %v", err)
	}
}

func TestTheStorageAccountIsCheckedBeforeTheUpload(t *testing.T) {
	p, _ := Build(almaRequest("x86_64"))
	s := armfake.New() // no storage account
	_, err := Check(context.Background(), client(t, s), p, fastOpts(t))
	if err == nil || !strings.Contains(err.Error(), "storage account "+blob.StorageAccountID) || !strings.Contains(err.Error(), "does not exist") ||
		!strings.Contains(err.Error(), "storage_account_id") {
		t.Fatalf("missing account: %v", err)
	}
	s.PutStorageAccount(blob.StorageAccountID, "eastus")
	_, err = Check(context.Background(), client(t, s), p, fastOpts(t))
	if err == nil || !strings.Contains(err.Error(), "is in eastus, the gallery in westeurope") {
		t.Fatalf("account in another region: %v", err)
	}
	s.PutStorageAccount(blob.StorageAccountID, "West Europe")
	if _, err := Check(context.Background(), client(t, s), p, fastOpts(t)); err != nil {
		t.Fatal(err)
	}
	if s.DefinitionCreates.Load()+s.VersionCreates.Load() != 0 {
		t.Fatal("check changed the gallery")
	}
}

// unchecked is the status Check gives a plan on an empty gallery, made
// without Validate: what a bug past Validate would send.
func unchecked(p Plan) Status {
	st := Status{Plan: p}
	for _, d := range p.Definitions {
		st.Definitions = append(st.Definitions, DefinitionStatus{d, ActCreate})
	}
	for _, v := range p.Versions {
		st.Versions = append(st.Versions, VersionStatus{Version: v, Action: ActCreate})
	}
	return st
}

func TestTheStandInRefusesAVersionFromAnUnknownOrMismatchedStorageAccount(t *testing.T) {
	for name, src := range map[string]Source{
		"unknown":  {StorageAccountID: "/subscriptions/sub/resourceGroups/other/providers/Microsoft.Storage/storageAccounts/acct", URI: blob.URI},
		"mismatch": {StorageAccountID: blob.StorageAccountID, URI: "https://other.blob.core.windows.net/disks/a.vhd"},
	} {
		t.Run(name, func(t *testing.T) {
			s := newStore()
			r := almaRequest("x86_64")
			r.Source = src
			p, err := Build(r)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Apply(context.Background(), client(t, s), unchecked(p), fastOpts(t)); err == nil || !strings.Contains(err.Error(), "InvalidParameter") {
				t.Fatalf("got %v", err)
			}
			if s.VersionCreates.Load() != 0 {
				t.Fatal("created")
			}
		})
	}
}
