package gallery

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
)

// Client is all this package asks of Azure Resource Manager. Get methods
// return nil, nil when the resource does not exist.
type Client interface {
	// GalleryLocation returns the gallery's region.
	GalleryLocation(ctx context.Context, g Gallery) (string, error)
	GetDefinition(ctx context.Context, g Gallery, name string) (*armcompute.GalleryImage, error)
	CreateDefinition(ctx context.Context, g Gallery, name string, def armcompute.GalleryImage, poll time.Duration) error
	GetVersion(ctx context.Context, g Gallery, def, version string) (*armcompute.GalleryImageVersion, error)
	// ListVersions returns nil when the definition does not exist.
	ListVersions(ctx context.Context, g Gallery, def string) ([]*armcompute.GalleryImageVersion, error)
	// BeginCreateVersion starts (or, with a resume token, resumes) the
	// creation of a version.
	BeginCreateVersion(ctx context.Context, g Gallery, def, version string, v armcompute.GalleryImageVersion, resumeToken string) (Poller, error)
	DeleteVersion(ctx context.Context, g Gallery, def, version string, poll time.Duration) error
	// UpdateVersion patches a version (publishing profile changes such as
	// excludeFromLatest; the storage profile is sent as read, as the REST
	// spec requires it in the body).
	UpdateVersion(ctx context.Context, g Gallery, def, version string, u armcompute.GalleryImageVersionUpdate, poll time.Duration) error
	// StorageAccountLocation returns the region of a storage account by
	// its resource id, "" when it does not exist.
	StorageAccountLocation(ctx context.Context, id string) (string, error)
}

// Poller is a long-running version creation.
type Poller interface {
	ResumeToken() (string, error)
	PollUntilDone(ctx context.Context, frequency time.Duration) error
}

// ARM implements Client with armcompute's clients.
type ARM struct {
	arm       *arm.Client // for the storage account (no armstorage dependency)
	galleries *armcompute.GalleriesClient
	images    *armcompute.GalleryImagesClient
	versions  *armcompute.GalleryImageVersionsClient
}

// NewARM returns a Client for the subscription.
func NewARM(subscriptionID string, cred azcore.TokenCredential, opts *arm.ClientOptions) (*ARM, error) {
	f, err := armcompute.NewClientFactory(subscriptionID, cred, opts)
	if err != nil {
		return nil, err
	}
	c, err := arm.NewClient("osimage-gallery", "v1.0.0", cred, opts)
	if err != nil {
		return nil, err
	}
	return &ARM{arm: c, galleries: f.NewGalleriesClient(), images: f.NewGalleryImagesClient(), versions: f.NewGalleryImageVersionsClient()}, nil
}

// StorageAPIVersion is the Microsoft.Storage API of the storage account
// read.
const StorageAPIVersion = "2023-05-01"

func (a *ARM) StorageAccountLocation(ctx context.Context, id string) (string, error) {
	req, err := runtime.NewRequest(ctx, http.MethodGet, runtime.JoinPaths(a.arm.Endpoint(), id))
	if err != nil {
		return "", err
	}
	q := req.Raw().URL.Query()
	q.Set("api-version", StorageAPIVersion)
	req.Raw().URL.RawQuery = q.Encode()
	req.Raw().Header.Set("Accept", "application/json")
	resp, err := a.arm.Pipeline().Do(req)
	if err != nil {
		return "", err
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return "", nil
	}
	if !runtime.HasStatusCode(resp, http.StatusOK) {
		return "", runtime.NewResponseError(resp)
	}
	var acct struct {
		Location string `json:"location"`
	}
	if err := runtime.UnmarshalAsJSON(resp, &acct); err != nil {
		return "", err
	}
	if acct.Location == "" {
		return "", errors.New("the storage account has no location")
	}
	return acct.Location, nil
}

func notFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

func (a *ARM) GalleryLocation(ctx context.Context, g Gallery) (string, error) {
	r, err := a.galleries.Get(ctx, g.ResourceGroup, g.Name, nil)
	if err != nil {
		return "", err
	}
	if r.Location == nil || *r.Location == "" {
		return "", errors.New("the gallery has no location")
	}
	return *r.Location, nil
}

func (a *ARM) GetDefinition(ctx context.Context, g Gallery, name string) (*armcompute.GalleryImage, error) {
	r, err := a.images.Get(ctx, g.ResourceGroup, g.Name, name, nil)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &r.GalleryImage, nil
}

func (a *ARM) CreateDefinition(ctx context.Context, g Gallery, name string, def armcompute.GalleryImage, poll time.Duration) error {
	p, err := a.images.BeginCreateOrUpdate(ctx, g.ResourceGroup, g.Name, name, def, nil)
	if err != nil {
		return err
	}
	_, err = p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: poll})
	return err
}

func (a *ARM) GetVersion(ctx context.Context, g Gallery, def, version string) (*armcompute.GalleryImageVersion, error) {
	r, err := a.versions.Get(ctx, g.ResourceGroup, g.Name, def, version, nil)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &r.GalleryImageVersion, nil
}

func (a *ARM) ListVersions(ctx context.Context, g Gallery, def string) ([]*armcompute.GalleryImageVersion, error) {
	var out []*armcompute.GalleryImageVersion
	pager := a.versions.NewListByGalleryImagePager(g.ResourceGroup, g.Name, def, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if notFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, page.Value...)
	}
	return out, nil
}

func (a *ARM) BeginCreateVersion(ctx context.Context, g Gallery, def, version string, v armcompute.GalleryImageVersion, resumeToken string) (Poller, error) {
	p, err := a.versions.BeginCreateOrUpdate(ctx, g.ResourceGroup, g.Name, def, version, v,
		&armcompute.GalleryImageVersionsClientBeginCreateOrUpdateOptions{ResumeToken: resumeToken})
	if err != nil {
		return nil, err
	}
	return armPoller[armcompute.GalleryImageVersionsClientCreateOrUpdateResponse]{p}, nil
}

func (a *ARM) DeleteVersion(ctx context.Context, g Gallery, def, version string, poll time.Duration) error {
	p, err := a.versions.BeginDelete(ctx, g.ResourceGroup, g.Name, def, version, nil)
	if err != nil {
		return err
	}
	_, err = p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: poll})
	return err
}

func (a *ARM) UpdateVersion(ctx context.Context, g Gallery, def, version string, u armcompute.GalleryImageVersionUpdate, poll time.Duration) error {
	p, err := a.versions.BeginUpdate(ctx, g.ResourceGroup, g.Name, def, version, u, nil)
	if err != nil {
		return err
	}
	_, err = p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: poll})
	return err
}

type armPoller[T any] struct{ p *runtime.Poller[T] }

func (a armPoller[T]) ResumeToken() (string, error) { return a.p.ResumeToken() }

func (a armPoller[T]) PollUntilDone(ctx context.Context, freq time.Duration) error {
	_, err := a.p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: freq})
	return err
}
