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
}

// Poller is a long-running version creation.
type Poller interface {
	ResumeToken() (string, error)
	PollUntilDone(ctx context.Context, frequency time.Duration) error
}

// ARM implements Client with armcompute's clients.
type ARM struct {
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
	return &ARM{galleries: f.NewGalleriesClient(), images: f.NewGalleryImagesClient(), versions: f.NewGalleryImageVersionsClient()}, nil
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

type armPoller[T any] struct{ p *runtime.Poller[T] }

func (a armPoller[T]) ResumeToken() (string, error) { return a.p.ResumeToken() }

func (a armPoller[T]) PollUntilDone(ctx context.Context, freq time.Duration) error {
	_, err := a.p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: freq})
	return err
}
