package release

import (
	"context"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
)

// The blob store keeps the same contract against Azurite, whose
// conditional Put Blob (If-Match / If-None-Match: *) answers 412 and 409
// as Azure does.
func TestBlobStoreKeepsTheStoreContractAgainstAzurite(t *testing.T) {
	az := testsvc.StartAzurite(t)
	cl, err := azblob.NewClientFromConnectionString(az.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateContainer(context.Background(), "vhds", nil); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", az.ConnectionString)
	s, err := Open(az.BlobURL + "/vhds/state")
	if err != nil {
		t.Fatal(err)
	}
	if s.String() != az.BlobURL+"/vhds/state/" {
		t.Fatalf("String() = %s", s)
	}
	storeContract(t, s)
	// Documents live under the prefix, next to whatever else the
	// container holds.
	names, _ := s.List(context.Background(), "")
	for _, n := range names {
		if strings.HasPrefix(n, "state/") {
			t.Fatalf("List returns names with the store's prefix: %v", names)
		}
	}
	pager := cl.NewListBlobsFlatPager("vhds", nil)
	page, _ := pager.NextPage(context.Background())
	if len(page.Segment.BlobItems) == 0 || !strings.HasPrefix(*page.Segment.BlobItems[0].Name, "state/1.0/") {
		t.Fatalf("blobs: %v", page.Segment.BlobItems)
	}
}

// A SAS in the store URL authenticates and never shows in errors.
func TestBlobStoreErrorsNeverShowTheSAS(t *testing.T) {
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", "")
	const sas = "sv=2022-11-02&ss=b&srt=co&sp=rwl&se=2099-01-01T00:00:00Z&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
	s, err := Open("http://127.0.0.1:1/devstoreaccount1/vhds/state?" + sas)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), "sig=") {
		t.Fatalf("String() shows the SAS: %s", s)
	}
	_, _, err = s.Get(context.Background(), "1.0/k/r0.json")
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") || strings.Contains(err.Error(), "sig=") {
		t.Fatalf("a failed connection: %v", err)
	}
}
