package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// BlobStore is a store in an Azure blob container (the one the VHDs go to, for
// example), under a prefix: each document a block blob, every write a Put
// Blob with If-Match on the ETag read (If-None-Match: * for a new one), so
// runners on different machines never overwrite each other's records.
type BlobStore struct {
	client *container.Client
	prefix string // "" or ending in "/"
	where  string // container URL and prefix, without query
}

// OpenBlob opens the container and prefix of u
// (https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX, or Azurite's
// http://127.0.0.1:PORT/ACCOUNT/CONTAINER/PREFIX). Credentials: a SAS in
// u's query or in AZURE_STORAGE_SAS_TOKEN; else the connection string in
// AZURE_STORAGE_CONNECTION_STRING; else azidentity's default chain
// (environment, workload identity, managed identity, Azure CLI). String()
// never shows the SAS, so the store can travel in a variant: components
// open it again with the credentials of their environment.
func OpenBlob(u string) (*BlobStore, error) {
	parts, err := azblob.ParseURL(u)
	if err != nil || parts.ContainerName == "" {
		return nil, fmt.Errorf("state store %s: want a blob container URL, https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX] (%v)", redactURL(u), err)
	}
	prefix := strings.Trim(parts.BlobName, "/")
	if prefix != "" {
		prefix += "/"
	}
	hasSAS := parts.SAS.Signature() != ""
	parts.BlobName, parts.Snapshot, parts.VersionID = "", "", ""
	containerURL := parts.String()
	b := &BlobStore{prefix: prefix, where: redactURL(containerURL) + "/" + prefix}
	sasEnv := strings.TrimPrefix(os.Getenv("AZURE_STORAGE_SAS_TOKEN"), "?")
	switch cs := os.Getenv("AZURE_STORAGE_CONNECTION_STRING"); {
	case hasSAS:
		b.client, err = container.NewClientWithNoCredential(containerURL, nil)
	case sasEnv != "":
		b.client, err = container.NewClientWithNoCredential(containerURL+"?"+sasEnv, nil)
	case cs != "":
		b.client, err = container.NewClientFromConnectionString(cs, parts.ContainerName, nil)
	default:
		var cred azcore.TokenCredential
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err == nil {
			b.client, err = container.NewClient(containerURL, cred, nil)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("state store %s: %v", b.where, redactErr(err))
	}
	return b, nil
}

func (b *BlobStore) String() string { return b.where }

// Get implements Store; the version is the blob's ETag.
func (b *BlobStore) Get(ctx context.Context, name string) ([]byte, string, error) {
	resp, err := b.client.NewBlobClient(b.prefix+name).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return nil, "", fmt.Errorf("%s in %s: %w", name, b, ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s in %s: %v", name, b, redactErr(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("%s in %s: %v", name, b, redactErr(err))
	}
	return data, string(*resp.ETag), nil
}

// Put implements Store.
func (b *BlobStore) Put(ctx context.Context, name string, data []byte, version string) error {
	cond := &blob.ModifiedAccessConditions{}
	if version == "" {
		any := azcore.ETagAny
		cond.IfNoneMatch = &any
	} else {
		etag := azcore.ETag(version)
		cond.IfMatch = &etag
	}
	ct := "application/json"
	_, err := b.client.NewBlockBlobClient(b.prefix+name).UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: cond},
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: &ct},
	})
	if bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists) {
		return fmt.Errorf("%s in %s: %w", name, b, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("%s in %s: %v", name, b, redactErr(err))
	}
	return nil
}

// List implements Store.
func (b *BlobStore) List(ctx context.Context, prefix string) ([]string, error) {
	full := b.prefix + prefix
	var out []string
	pager := b.client.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &full})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s in %s: %v", prefix, b, redactErr(err))
		}
		for _, it := range page.Segment.BlobItems {
			out = append(out, strings.TrimPrefix(*it.Name, b.prefix))
		}
	}
	slices.Sort(out)
	return out, nil
}

// redactURL drops a URL's query (a SAS) and user info.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return strings.TrimSuffix(u.String(), "/")
}

// redactErr keeps an error's text but drops query strings from every URL
// in it (azcore and net/url errors carry the SAS).
func redactErr(err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	msg := err.Error()
	if errors.As(err, &ue) {
		msg = strings.ReplaceAll(msg, ue.URL, redactURL(ue.URL))
	}
	var out bytes.Buffer
	for _, f := range strings.Fields(msg) {
		if i := strings.Index(f, "?"); i > 0 && (strings.HasPrefix(f, "http://") || strings.HasPrefix(f, "https://")) {
			f = f[:i] + "?REDACTED"
		}
		if out.Len() > 0 {
			out.WriteByte(' ')
		}
		out.WriteString(f)
	}
	return errors.New(out.String())
}

// Open opens a store: a blob container URL (http:// or https://), or a
// local directory (a path, or file:///path), created when missing.
func Open(spec string) (Store, error) {
	switch {
	case spec == "":
		return nil, errors.New("state store: empty; want a directory or a blob container URL")
	case strings.HasPrefix(spec, "https://"), strings.HasPrefix(spec, "http://"):
		return OpenBlob(spec)
	case strings.HasPrefix(spec, "oci://"):
		return nil, fmt.Errorf("state store %s: registry stores are not supported yet; use a directory or a blob container", spec)
	}
	dir, err := filepath.Abs(strings.TrimPrefix(spec, "file://"))
	if err != nil {
		return nil, fmt.Errorf("state store %s: %w", spec, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state store %s: %w", dir, err)
	}
	return Dir{Root: dir}, nil
}
