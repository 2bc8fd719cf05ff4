// Package armfake is an in-memory Compute Gallery for tests, built on the
// SDK's own armcompute/v8/fake servers (the one stand-in the project
// allows): in process through a fake transport, or on the wire behind a
// loopback TLS server for the real packer binary.
package armfake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
)

// Store holds definitions and versions by name.
type Store struct {
	mu          sync.Mutex
	Definitions map[string]armcompute.GalleryImage        // by definition name
	Versions    map[string]armcompute.GalleryImageVersion // by "definition/version"
	// Location is the gallery's region (empty: the gallery does not exist).
	Location string
	// PendingPolls is how many times a version creation answers "in
	// progress" before it succeeds.
	PendingPolls int
	// FailVersion, if set, makes version creation end in this error code.
	FailVersion string
	// FailDefinition and FailDelete, if set, make definition creation and
	// version deletion end in this error code (changing nothing).
	FailDefinition, FailDelete string
	// SourceBlobType, if set, tells the type of the blob at a version's
	// source URI ("PageBlob", "BlockBlob", "AppendBlob"), or an error when
	// it cannot be read. A version from anything but a page blob is
	// refused, as Azure refuses it (AzuriteBlobType reads Azurite's).
	SourceBlobType func(ctx context.Context, uri string) (string, error)
	// StorageAccounts are the storage accounts of the subscription: region
	// by lower-case resource id (PutStorageAccount). A GET of any other
	// answers 404, as Azure does.
	StorageAccounts map[string]string
	// Counters of mutating calls reaching the service.
	DefinitionCreates, VersionCreates, VersionDeletes, VersionUpdates atomic.Int64
	// VersionGets counts the GETs of single versions.
	VersionGets atomic.Int64
	transport   policy.Transporter
	// held are versions another client is creating (HoldCreating).
	held map[string]*held
	// failing are creations meant to fail, with the polls left before.
	failing map[string]int
	serial  sync.Mutex // one request at a time through transport
}

type held struct {
	gets  int
	final armcompute.GalleryProvisioningState
}

// HoldCreating makes a stored version read as Creating, as one that
// another run (a CI runner that was lost) is still creating, for the next
// gets GETs, and then as final. Meanwhile a PUT of it is refused as Azure
// refuses one while an operation on the resource is under way.
func (s *Store) HoldCreating(def, ver string, gets int, final armcompute.GalleryProvisioningState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.Versions[def+"/"+ver]
	if !ok {
		panic("armfake: HoldCreating of a version not stored: " + def + "/" + ver)
	}
	if v.Properties == nil {
		v.Properties = &armcompute.GalleryImageVersionProperties{}
	}
	v.Properties.ProvisioningState = ptr(armcompute.GalleryProvisioningStateCreating)
	s.Versions[def+"/"+ver] = v
	if s.held == nil {
		s.held = map[string]*held{}
	}
	s.held[def+"/"+ver] = &held{gets: gets, final: final}
}

// setState sets a stored version's provisioning state; s.mu is held.
func (s *Store) setState(key string, st armcompute.GalleryProvisioningState) {
	if v, ok := s.Versions[key]; ok && v.Properties != nil {
		p := *v.Properties
		p.ProvisioningState = ptr(st)
		v.Properties = &p
		s.Versions[key] = v
	}
}

// New returns an empty store.
func New() *Store {
	s := &Store{Location: "westeurope", Definitions: map[string]armcompute.GalleryImage{}, Versions: map[string]armcompute.GalleryImageVersion{},
		StorageAccounts: map[string]string{}}
	s.transport = fake.NewServerFactoryTransport(&fake.ServerFactory{
		GalleriesServer: fake.GalleriesServer{
			Get: func(ctx context.Context, rg, gallery string, _ *armcompute.GalleriesClientGetOptions) (resp azfake.Responder[armcompute.GalleriesClientGetResponse], errResp azfake.ErrorResponder) {
				if s.Location == "" {
					errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
					return
				}
				resp.SetResponse(http.StatusOK, armcompute.GalleriesClientGetResponse{Gallery: armcompute.Gallery{Name: ptr(gallery), Location: ptr(s.Location)}}, nil)
				return
			},
		},
		GalleryImagesServer:        s.imagesServer(),
		GalleryImageVersionsServer: s.versionsServer(),
	})
	return s
}

func ptr[T any](v T) *T { return &v }

// Transport is the policy.Transporter to put into arm.ClientOptions.
func (s *Store) Transport() policy.Transporter { return observer{s} }

// observer marks a version Succeeded once its creation's poller says so,
// and answers the last poll of a creation meant to fail (FailVersion).
//
// A creation that ends in an error leaves the version in provisioning
// state Failed, as Azure does: the resource stays, in the terminal state
// Failed, until it is deleted or put again (Azure Resource Manager RPC,
// async-api-reference.md, "ProvisioningState property": Succeeded, Failed
// and Canceled are terminal; GalleryImageVersionProperties.provisioningState
// in the Compute Gallery REST spec lists Creating, Updating, Failed,
// Succeeded, Deleting, Migrating). The failure is answered here rather than
// with the fake's SetTerminalError: armcompute/v8/fake keeps a poller that
// ended in an error in its tracker (dispatchBeginCreateOrUpdate returns
// before removing it), so a later PUT of the same version would get
// "fake poller response is emtpy" instead of a new creation.
type observer struct{ s *Store }

const pollSuffix = "/get/fake/status"

func (o observer) Do(req *http.Request) (*http.Response, error) {
	if id, ok := storageAccountOf(req.URL.Path); ok {
		return o.s.storageAccount(req, id), nil
	}
	// Refusals with a message (the fake's ErrorResponder sends only a
	// code) are checked here, before the fake server sees the request.
	if name, ok := definitionOf(req.URL.Path); ok && req.Method == http.MethodPut {
		var d armcompute.GalleryImage
		if err := peekJSON(req, &d); err != nil {
			return nil, err
		}
		if code, msg := checkDefinition(name, d); code != "" {
			return errorResponse(req, http.StatusBadRequest, code, msg), nil
		}
	}
	def, ver, isVersion := versionOf(req.URL.Path)
	key := def + "/" + ver
	if isVersion && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, pollSuffix) {
		o.s.mu.Lock()
		left, failing := o.s.failing[key]
		if failing && left <= 0 {
			delete(o.s.failing, key)
			o.s.setState(key, armcompute.GalleryProvisioningStateFailed)
		} else if failing {
			o.s.failing[key] = left - 1
		}
		o.s.mu.Unlock()
		if failing && left <= 0 {
			return errorResponse(req, http.StatusBadRequest, o.s.FailVersion, "the creation of image version "+ver+" failed (armfake)"), nil
		}
	}
	if isVersion && req.Method == http.MethodPut {
		var v armcompute.GalleryImageVersion
		if err := peekJSON(req, &v); err != nil {
			return nil, err
		}
		o.s.mu.Lock()
		code, msg := o.s.checkVersion(req.Context(), v)
		o.s.mu.Unlock()
		if code != "" {
			return errorResponse(req, http.StatusBadRequest, code, msg), nil
		}
	}
	// One request at a time, each to its end: the SDK's fake transport
	// answers in a goroutine that outlives a cancelled request, and its
	// poller responders are not safe for concurrent use (a poll cancelled
	// by a timeout raced with the next run's resumed poll).
	o.s.serial.Lock()
	resp, err := o.s.transport.Do(req.WithContext(context.WithoutCancel(req.Context())))
	o.s.serial.Unlock()
	if isVersion && req.Method == http.MethodGet && err == nil && strings.EqualFold(resp.Header.Get("Fake-Poller-Status"), "Succeeded") {
		o.s.mu.Lock()
		o.s.setState(key, armcompute.GalleryProvisioningStateSucceeded)
		o.s.mu.Unlock()
	}
	return resp, err
}

// peekJSON decodes the request's JSON body into v and leaves the body to
// be read again; a body that is not JSON leaves v zero (the fake server
// refuses it).
func peekJSON(req *http.Request, v any) error {
	if req.Body == nil {
		return nil
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return err
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	json.Unmarshal(b, v)
	return nil
}

// definitionOf finds the definition name in a definition's path (not a
// version's).
func definitionOf(path string) (string, bool) {
	p := strings.Split(strings.Trim(path, "/"), "/")
	if n := len(p); n >= 2 && p[n-2] == "images" {
		return p[n-1], true
	}
	return "", false
}

// storageAccountOf finds a storage account's resource id in a path.
func storageAccountOf(path string) (string, bool) {
	i := strings.Index(strings.ToLower(path), "/providers/microsoft.storage/storageaccounts/")
	if i < 0 || !strings.HasPrefix(strings.ToLower(path), "/subscriptions/") {
		return "", false
	}
	return strings.TrimSuffix(path, "/"), true
}

// PutStorageAccount adds a storage account in a region.
func (s *Store) PutStorageAccount(id, location string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.StorageAccounts[strings.ToLower(id)] = location
}

// storageAccount answers a GET of a storage account (Microsoft.Storage
// Storage Accounts - Get Properties: 200 with its location, or 404
// ResourceNotFound).
func (s *Store) storageAccount(req *http.Request, id string) *http.Response {
	s.mu.Lock()
	loc, ok := s.StorageAccounts[strings.ToLower(id)]
	s.mu.Unlock()
	if req.Method != http.MethodGet {
		return errorResponse(req, http.StatusMethodNotAllowed, "MethodNotAllowed", "armfake serves GET of storage accounts only")
	}
	if !ok {
		return errorResponse(req, http.StatusNotFound, "ResourceNotFound", "The Resource '"+id+"' was not found.")
	}
	body, _ := json.Marshal(map[string]any{"id": id, "name": id[strings.LastIndex(id, "/")+1:], "location": loc, "kind": "StorageV2",
		"type": "Microsoft.Storage/storageAccounts"})
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Request: req,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(body))}
}

func versionOf(path string) (def, ver string, ok bool) {
	p := strings.Split(strings.Trim(path, "/"), "/")
	for i := 0; i+3 < len(p); i++ {
		if p[i] == "images" && p[i+2] == "versions" {
			return p[i+1], p[i+3], true
		}
	}
	return "", "", false
}

func (s *Store) imagesServer() fake.GalleryImagesServer {
	return fake.GalleryImagesServer{
		Get: func(ctx context.Context, rg, gallery, name string, _ *armcompute.GalleryImagesClientGetOptions) (resp azfake.Responder[armcompute.GalleryImagesClientGetResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			d, ok := s.Definitions[name]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, armcompute.GalleryImagesClientGetResponse{GalleryImage: d}, nil)
			return
		},
		BeginCreateOrUpdate: func(ctx context.Context, rg, gallery, name string, img armcompute.GalleryImage, _ *armcompute.GalleryImagesClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcompute.GalleryImagesClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.DefinitionCreates.Add(1)
			resp.AddNonTerminalResponse(http.StatusCreated, nil)
			if s.FailDefinition != "" {
				resp.SetTerminalError(http.StatusBadRequest, s.FailDefinition)
				return
			}
			img.Name = ptr(name)
			img.ID = ptr("/subscriptions/sub/resourceGroups/" + rg + "/providers/Microsoft.Compute/galleries/" + gallery + "/images/" + name)
			s.Definitions[name] = img
			resp.SetTerminalResponse(http.StatusOK, armcompute.GalleryImagesClientCreateOrUpdateResponse{GalleryImage: img}, nil)
			return
		},
	}
}

func (s *Store) versionsServer() fake.GalleryImageVersionsServer {
	return fake.GalleryImageVersionsServer{
		Get: func(ctx context.Context, rg, gallery, def, ver string, _ *armcompute.GalleryImageVersionsClientGetOptions) (resp azfake.Responder[armcompute.GalleryImageVersionsClientGetResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.VersionGets.Add(1)
			if h := s.held[def+"/"+ver]; h != nil {
				if h.gets <= 0 {
					s.setState(def+"/"+ver, h.final)
					delete(s.held, def+"/"+ver)
				}
				h.gets--
			}
			v, ok := s.Versions[def+"/"+ver]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, armcompute.GalleryImageVersionsClientGetResponse{GalleryImageVersion: v}, nil)
			return
		},
		NewListByGalleryImagePager: func(rg, gallery, def string, _ *armcompute.GalleryImageVersionsClientListByGalleryImageOptions) (resp azfake.PagerResponder[armcompute.GalleryImageVersionsClientListByGalleryImageResponse]) {
			s.mu.Lock()
			defer s.mu.Unlock()
			var page []*armcompute.GalleryImageVersion
			for k, v := range s.Versions {
				if strings.HasPrefix(k, def+"/") {
					page = append(page, ptr(v))
				}
			}
			resp.AddPage(http.StatusOK, armcompute.GalleryImageVersionsClientListByGalleryImageResponse{GalleryImageVersionList: armcompute.GalleryImageVersionList{Value: page}}, nil)
			return
		},
		BeginCreateOrUpdate: func(ctx context.Context, rg, gallery, def, ver string, v armcompute.GalleryImageVersion, _ *armcompute.GalleryImageVersionsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcompute.GalleryImageVersionsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if _, ok := s.Definitions[def]; !ok {
				errResp.SetResponseError(http.StatusNotFound, "GalleryImageNotFound")
				return
			}
			if s.held[def+"/"+ver] != nil {
				// Azure refuses a PUT while another operation on the
				// resource is under way (Azure Resource Manager RPC,
				// async-api-reference.md: 409 Conflict).
				errResp.SetResponseError(http.StatusConflict, "OperationNotAllowed")
				return
			}
			s.VersionCreates.Add(1)
			v.Name = ptr(ver)
			v.ID = ptr("/subscriptions/sub/resourceGroups/" + rg + "/providers/Microsoft.Compute/galleries/" + gallery + "/images/" + def + "/versions/" + ver)
			if v.Properties == nil {
				v.Properties = &armcompute.GalleryImageVersionProperties{}
			}
			v.Properties.ProvisioningState = ptr(armcompute.GalleryProvisioningStateCreating)
			s.Versions[def+"/"+ver] = v
			n := max(s.PendingPolls, 1)
			for range n {
				resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			}
			if s.FailVersion != "" {
				// The PUT takes the first answer, polls the others; the
				// poll after them fails (observer).
				if s.failing == nil {
					s.failing = map[string]int{}
				}
				s.failing[def+"/"+ver] = n - 1
				return
			}
			done := v
			done.Properties = ptr(*v.Properties)
			done.Properties.ProvisioningState = ptr(armcompute.GalleryProvisioningStateSucceeded)
			resp.SetTerminalResponse(http.StatusOK, armcompute.GalleryImageVersionsClientCreateOrUpdateResponse{GalleryImageVersion: done}, nil)
			return
		},
		// PATCH of a version: the publishing profile's excludeFromLatest
		// and endOfLifeDate, and each target region's excludeFromLatest.
		// The Compute Gallery REST spec's GalleryImageVersionProperties
		// (which GalleryImageVersionUpdate.properties is) requires
		// storageProfile, so a body without it is refused (400).
		BeginUpdate: func(ctx context.Context, rg, gallery, def, ver string, u armcompute.GalleryImageVersionUpdate, _ *armcompute.GalleryImageVersionsClientBeginUpdateOptions) (resp azfake.PollerResponder[armcompute.GalleryImageVersionsClientUpdateResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			v, ok := s.Versions[def+"/"+ver]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			if u.Properties == nil || u.Properties.StorageProfile == nil {
				errResp.SetResponseError(http.StatusBadRequest, "InvalidParameter")
				return
			}
			s.VersionUpdates.Add(1)
			p := *v.Properties
			if up := u.Properties.PublishingProfile; up != nil {
				pp := armcompute.GalleryImageVersionPublishingProfile{}
				if p.PublishingProfile != nil {
					pp = *p.PublishingProfile
				}
				if up.ExcludeFromLatest != nil {
					pp.ExcludeFromLatest = up.ExcludeFromLatest
				}
				if up.EndOfLifeDate != nil {
					pp.EndOfLifeDate = up.EndOfLifeDate
				}
				if up.TargetRegions != nil {
					pp.TargetRegions = up.TargetRegions
				}
				p.PublishingProfile = &pp
			}
			v.Properties = &p
			s.Versions[def+"/"+ver] = v
			// The update answers 200 (the only status armcompute's
			// GalleryImageVersionsClient.update accepts).
			resp.SetTerminalResponse(http.StatusOK, armcompute.GalleryImageVersionsClientUpdateResponse{GalleryImageVersion: v}, nil)
			return
		},
		BeginDelete: func(ctx context.Context, rg, gallery, def, ver string, _ *armcompute.GalleryImageVersionsClientBeginDeleteOptions) (resp azfake.PollerResponder[armcompute.GalleryImageVersionsClientDeleteResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.VersionDeletes.Add(1)
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			if s.FailDelete != "" {
				resp.SetTerminalError(http.StatusConflict, s.FailDelete)
				return
			}
			delete(s.Versions, def+"/"+ver)
			resp.SetTerminalResponse(http.StatusOK, armcompute.GalleryImageVersionsClientDeleteResponse{}, nil)
			return
		},
	}
}

// Snapshot copies the stored definitions and versions (by
// "definition/version").
func (s *Store) Snapshot() (map[string]armcompute.GalleryImage, map[string]armcompute.GalleryImageVersion) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defs := make(map[string]armcompute.GalleryImage, len(s.Definitions))
	for k, v := range s.Definitions {
		defs[k] = v
	}
	vers := make(map[string]armcompute.GalleryImageVersion, len(s.Versions))
	for k, v := range s.Versions {
		vers[k] = v
	}
	return defs, vers
}

// Version returns a stored version.
func (s *Store) Version(def, ver string) (armcompute.GalleryImageVersion, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.Versions[def+"/"+ver]
	return v, ok
}

// Definition returns a stored definition.
func (s *Store) Definition(name string) (armcompute.GalleryImage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.Definitions[name]
	return d, ok
}

// PutDefinition stores a definition as if it existed before.
func (s *Store) PutDefinition(name string, d armcompute.GalleryImage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.Name = ptr(name)
	s.Definitions[name] = d
}

// PutVersion stores a version as if it existed before.
func (s *Store) PutVersion(def, ver string, v armcompute.GalleryImageVersion) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v.Name = ptr(ver)
	s.Versions[def+"/"+ver] = v
}

// checkVersion refuses what Azure refuses in a version's body (before
// the fake server stores it); s.mu is held. It returns an error code and message, or "".
func (s *Store) checkVersion(ctx context.Context, v armcompute.GalleryImageVersion) (code, msg string) {
	var src *armcompute.GalleryDiskImageSource
	if p := v.Properties; p != nil && p.StorageProfile != nil && p.StorageProfile.OSDiskImage != nil {
		src = p.StorageProfile.OSDiskImage.Source
	}
	if p := v.Properties; p != nil && p.PublishingProfile != nil && p.PublishingProfile.ReplicationMode != nil &&
		*p.PublishingProfile.ReplicationMode == armcompute.ReplicationModeShallow {
		// Shallow replication keeps the image in the source region only,
		// with one replica (Compute Gallery docs, "Shallow replication":
		// "only ... in the source region", "replica count ... 1";
		// packer-plugin-azure refuses other counts: "When using shallow
		// replication the replica count can only be 1").
		pp := p.PublishingProfile
		if len(pp.TargetRegions) > 1 {
			return "InvalidParameter", fmt.Sprintf("shallow replication supports only the source region; %d target regions given", len(pp.TargetRegions))
		}
		for _, r := range pp.TargetRegions {
			if r.RegionalReplicaCount != nil && *r.RegionalReplicaCount > 1 {
				return "InvalidParameter", fmt.Sprintf("shallow replication supports 1 replica; region %s asks %d", str(r.Name), *r.RegionalReplicaCount)
			}
			if r.Name != nil && s.Location != "" && normRegion(*r.Name) != normRegion(s.Location) {
				return "InvalidParameter", fmt.Sprintf("shallow replication supports only the source region %s; target region %s given", s.Location, *r.Name)
			}
		}
		if pp.ReplicaCount != nil && *pp.ReplicaCount > 1 {
			return "InvalidParameter", fmt.Sprintf("shallow replication supports 1 replica; replicaCount %d given", *pp.ReplicaCount)
		}
	}
	if src != nil && src.StorageAccountID != nil {
		// The source's storage account must exist and be the one the
		// blob URI names (Azure rejects a version whose account id does
		// not match the URI: reference/azure.md, 6; the REST spec's
		// GalleryDiskImageSource.storageAccountId).
		id := *src.StorageAccountID
		if _, ok := s.StorageAccounts[strings.ToLower(id)]; !ok {
			return "InvalidParameter", "the storage account " + id + " of the source was not found"
		}
		if name := id[strings.LastIndex(id, "/")+1:]; src.URI != nil && !strings.EqualFold(name, accountOfURI(*src.URI)) {
			return "InvalidParameter", "the storage account " + id + " is not the account of the source blob " + *src.URI
		}
	}
	if src != nil && src.URI != nil && s.SourceBlobType != nil {
		// A version is made from a VHD in a page blob only: "The VHD must
		// be a page blob" (Azure Compute Gallery docs, create an image
		// version from a VHD in a storage account; a block blob VHD cannot
		// become a disk, microsoft/AzureStorageExplorer#1267).
		typ, err := s.SourceBlobType(ctx, *src.URI)
		if err != nil {
			return "InvalidParameter", "the source blob " + *src.URI + " cannot be read: " + err.Error()
		}
		if typ != string(blob.BlobTypePageBlob) {
			return "InvalidParameter", "the source blob " + *src.URI + " is a " + typ + "; the VHD must be a page blob"
		}
	}
	return "", ""
}

// errorResponse is an ARM error answer to req (an ErrorResponse body).
func errorResponse(req *http.Request, status int, code, msg string) *http.Response {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Request: req,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Ms-Error-Code": {code}}, Body: io.NopCloser(bytes.NewReader(body))}
}

// AzuriteBlobType reads the type of a blob in Azurite (path-style URI
// http://host:port/account/container/blob) with the connection string,
// for SourceBlobType.
func AzuriteBlobType(connectionString string) func(ctx context.Context, uri string) (string, error) {
	return func(ctx context.Context, uri string) (string, error) {
		u, err := url.Parse(uri)
		if err != nil {
			return "", err
		}
		parts := strings.SplitN(strings.Trim(u.Path, "/"), "/", 3)
		if len(parts) != 3 {
			return "", errors.New("not a path-style blob URI")
		}
		c, err := blob.NewClientFromConnectionString(connectionString, parts[1], parts[2], nil)
		if err != nil {
			return "", err
		}
		p, err := c.GetProperties(ctx, nil)
		if err != nil {
			return "", err
		}
		if p.BlobType == nil {
			return "", errors.New("no blob type")
		}
		return string(*p.BlobType), nil
	}
}

// checkDefinition refuses what Azure refuses in a definition's body.
func checkDefinition(name string, d armcompute.GalleryImage) (code, msg string) {
	p := d.Properties
	if p == nil {
		return "", ""
	}
	gen := armcompute.HyperVGenerationV1 // the API's default
	if p.HyperVGeneration != nil {
		gen = *p.HyperVGeneration
	}
	for _, f := range p.Features {
		if f == nil || f.Name == nil || f.Value == nil || !strings.EqualFold(*f.Name, "DiskControllerTypes") {
			continue
		}
		// NVMe disk controllers need a generation 2 VM ("NVMe is only
		// supported on Generation 2 images": Azure docs, NVMe overview /
		// "Enable NVMe"); AgentBaker sets the feature on V2 definitions
		// only.
		if gen == armcompute.HyperVGenerationV1 && strings.Contains(strings.ToLower(*f.Value), "nvme") {
			return "InvalidParameter", "image definition " + name + ": DiskControllerTypes " + *f.Value + " on a V1 definition; NVMe needs hyperv generation V2"
		}
	}
	return "", ""
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func normRegion(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }

// accountOfURI is the storage account of a blob URI:
// https://ACCT.blob.core.windows.net/... or path style, as Azurite serves
// it, http://127.0.0.1:10000/ACCT/...
func accountOfURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	if h := u.Hostname(); h != "" && (h == "localhost" || strings.Trim(h, "0123456789.") == "") {
		return strings.SplitN(strings.Trim(u.Path, "/"), "/", 2)[0]
	}
	return strings.SplitN(u.Hostname(), ".", 2)[0]
}
