package pageblob

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// PutSidecar uploads a small file next to the page blob, as a block blob
// named name in the same container (the image's SBOM, its signature),
// with its Content-MD5. An existing blob of that name with the same MD5 is
// left alone; one with other content is replaced only when replace is set
// (the page blob itself was written in this run, so its neighbours must
// describe the new bytes), else kept, as it describes the blob it was
// uploaded with. It returns the blob's URL (without any SAS) and whether it
// was written.
func (t Target) PutSidecar(ctx context.Context, name string, data []byte, contentType string, replace bool) (string, bool, error) {
	if t.container == nil {
		return "", false, errors.New("storage: no container client")
	}
	bb := t.container.NewBlockBlobClient(name)
	url := URLWithoutQuery(bb.URL())
	sum := md5.Sum(data)
	props, err := bb.GetProperties(ctx, nil)
	switch {
	case err == nil && bytes.Equal(props.ContentMD5, sum[:]):
		return url, false, nil
	case err == nil && !replace:
		return url, false, nil
	case err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound):
		return url, false, Redact(fmt.Errorf("blob %s: %w", url, err), t.secrets)
	}
	_, err = bb.UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: &contentType, BlobContentMD5: sum[:]},
	})
	if err != nil {
		return url, false, Redact(fmt.Errorf("upload %s: %w", url, err), t.secrets)
	}
	return url, true, nil
}
