package pageblob

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
)

// TestABlockBlobOfTheSameBytesIsNotReused: a block blob holding exactly
// the VHD's bytes, with their Content-MD5 (as a Storage Explorer or azcopy
// upload leaves it), cannot be an image version's source: Azure makes
// versions from page blobs only. It is refused by name, or replaced by a
// page blob when overwriting is allowed.
func TestABlockBlobOfTheSameBytesIsNotReused(t *testing.T) {
	t.Parallel()
	az := testsvc.StartAzurite(t)
	src, err := OpenRaw(smallDisk(t, t.TempDir(), 40))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	tg := target(t, az, "disks", "block.vhd", true)
	mustCreateContainer(t, tg)
	data, err := io.ReadAll(io.NewSectionReader(src, 0, src.Size()))
	if err != nil {
		t.Fatal(err)
	}
	bb, err := blockblob.NewClientFromConnectionString(az.ConnectionString, "disks", "block.vhd", nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5Of(t, src)
	if _, err := bb.UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{HTTPHeaders: &blob.HTTPHeaders{BlobContentMD5: sum}}); err != nil {
		t.Fatal(err)
	}
	_, err = Upload(ctx, tg, src, Options{OverwriteOption: "overwrite_blob = true"})
	var ee *ExistsError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "is a BlockBlob") || !strings.Contains(err.Error(), "page blob") ||
		!strings.Contains(err.Error(), "block.vhd") || !strings.Contains(err.Error(), "overwrite_blob = true") {
		t.Fatalf("want an error naming the block blob, got %v", err)
	}
	var how string
	res, err := Upload(ctx, tg, src, Options{Overwrite: true, BeforeChange: func(h string) error { how = h; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reused || !res.Replaced || how != "overwritten" {
		t.Fatalf("overwrite: %+v, BeforeChange(%q)", res, how)
	}
	p, err := tg.Blob.GetProperties(ctx, nil)
	if err != nil || p.BlobType == nil || *p.BlobType != blob.BlobTypePageBlob {
		t.Fatalf("blob type after the overwrite: %v %v", p.BlobType, err)
	}
	expectMatches(t, tg, src, res.MD5)
}
