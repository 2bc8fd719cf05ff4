// Package gallery is the Packer glue of the osimage-gallery post-processor:
// it finds the VHD (or raw disk) by role and the destination among the
// variant's targets, then calls internal/azure/pageblob to upload and
// internal/azure/gallery to publish.
package gallery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery"
	"github.com/osimage/packer-plugin-osimage/internal/azure/pageblob"
	"github.com/osimage/packer-plugin-osimage/internal/diskfmt"
	"github.com/osimage/packer-plugin-osimage/internal/packerutil"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// BuilderID identifies artifacts of this post-processor.
const BuilderID = "osimage.post-processor.gallery"

// PostProcessor uploads a VHD as a page blob and publishes it into an
// Azure Compute Gallery.
type PostProcessor struct {
	config Config
	// armTransport, when set, replaces the HTTP transport of ARM clients
	// (unit tests use the SDK's fake servers).
	armTransport policy.Transporter
	credential   azcore.TokenCredential
}

func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

func (p *PostProcessor) Configure(raws ...interface{}) error { return p.config.Prepare(raws...) }

// destination is where the version goes, resolved from the config and the
// variant's targets.
type destination struct {
	gallery  gallery.Gallery
	names    map[string]string // generation -> definition
	gens     []string
	location string
}

func (c *Config) destination(v *variant.Variant) (*destination, error) {
	d := c.Destination
	var tgt *variant.Target
	if ts := v.TargetsOf(variant.InterfaceAzureComputeGallery); len(ts) > 0 {
		tgt = &ts[0]
	}
	var g gallery.Gallery
	if tgt != nil && tgt.ResourceURN != "" {
		var err error
		if g, err = gallery.ParseGalleryID(tgt.ResourceURN); err != nil {
			return nil, fmt.Errorf("variant %s target %s: resource_urn: %w", v.Key, tgt.Name, err)
		}
	}
	if d.Subscription != "" {
		g.SubscriptionID = d.Subscription
	}
	if c.SubscriptionID != "" && g.SubscriptionID == "" {
		g.SubscriptionID = c.SubscriptionID
	}
	if d.ResourceGroup != "" {
		g.ResourceGroup = d.ResourceGroup
	}
	if d.GalleryName != "" {
		g.Name = d.GalleryName
	}
	if g.Name == "" {
		return nil, nil // upload only
	}
	if g.SubscriptionID == "" || g.ResourceGroup == "" {
		return nil, fmt.Errorf("shared_image_gallery_destination: gallery %s needs subscription and resource_group", g.Name)
	}
	name := d.ImageName
	if name == "" && tgt != nil {
		name = tgt.ImageName
	}
	if name == "" {
		return nil, fmt.Errorf("shared_image_gallery_destination.image_name: no image definition name (and the variant's azure-compute-gallery target gives none)")
	}
	arch := v.Arch
	if arch == "" {
		arch = "x86_64"
	}
	asked := c.gens
	if len(asked) == 0 && v.HyperVGeneration != "" {
		asked = []string{v.HyperVGeneration}
	}
	gens, err := gallery.Generations(arch, asked)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, gen := range gens {
		names[gen] = name
		if gen == "V1" && len(gens) > 1 {
			if d.Gen1ImageName == "" {
				return nil, fmt.Errorf("hyperv_generations %v: give shared_image_gallery_destination.gen1_image_name, the definition of the V1 version (image_name %s takes V2)", gens, name)
			}
			names[gen] = d.Gen1ImageName
		}
	}
	g.Location = d.Location
	return &destination{gallery: g, names: names, gens: gens}, nil
}

func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, in packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	out, err := p.run(ctx, ui, in)
	if err != nil {
		return nil, false, false, fmt.Errorf("osimage-gallery: %w", err)
	}
	return out, true, false, nil
}

func (p *PostProcessor) run(ctx context.Context, ui packersdk.Ui, in packersdk.Artifact) (*Artifact, error) {
	c := &p.config
	a, err := artifact.From(in)
	if err != nil {
		return nil, err
	}
	c.ApplyVariant(a)
	v := &a.Variant
	file, err := pickInput(a)
	if err != nil {
		return nil, err
	}
	var src *pageblob.Source
	if file.Role == artifact.RoleVHD {
		src, err = pageblob.OpenVHD(file.Path)
	} else {
		if f, derr := diskfmt.Detect(file.Path); derr == nil && f != diskfmt.Raw {
			return nil, fmt.Errorf("input disk %s is %s; convert it with osimage-vhd first (raw disks are uploaded directly)", file.Path, f)
		}
		src, err = pageblob.OpenRaw(file.Path)
	}
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dest, err := c.destination(v)
	if err != nil {
		return nil, err
	}
	logf := func(f string, args ...any) { ui.Say(fmt.Sprintf(f, args...)) }

	// Credentials: an Azure AD credential when ARM or storage need one.
	var cred azcore.TokenCredential
	var tried string
	if dest != nil || (c.StorageConnectionString == "" && c.StorageSASToken == "") {
		if cred, tried, err = p.cred(); err != nil {
			return nil, fmt.Errorf("Azure credential (%s): %w", tried, err)
		}
	}
	credErr := func(err error) error {
		var ae *azidentityAuthErr
		if errors.As(err, &ae) || strings.Contains(err.Error(), "authentication failed") || strings.Contains(err.Error(), "DefaultAzureCredential") {
			return fmt.Errorf("no Azure credential worked (tried %s): %w", tried, err)
		}
		return err
	}

	blobName := c.BlobName
	if blobName == "" {
		blobName = defaultBlobName(v, file.Path)
	}
	endpoint := c.BlobEndpoint
	if endpoint == "" && c.StorageAccount != "" {
		endpoint = "https://" + c.StorageAccount + ".blob." + storageSuffix(c.CloudEnvironmentName)
	}
	tg, err := pageblob.NewTarget(pageblob.ClientConfig{
		Endpoint: endpoint, Container: c.Container, BlobName: blobName,
		ConnectionString: c.StorageConnectionString, SAS: c.StorageSASToken, Credential: cred,
		Retry:           policy.RetryOptions{MaxRetries: int32(c.MaxRetries)},
		CreateContainer: c.CreateContainer,
	})
	if err != nil {
		return nil, err
	}
	blobURL := pageblob.URLWithoutQuery(tg.Blob.URL())

	// Plan and check the gallery before anything is uploaded.
	var client gallery.Client
	var st gallery.Status
	gopts := gallery.Options{DryRun: c.DryRun, Force: c.Force, ForceOption: "force = true (or packer build -force)",
		Timeout: c.Timeout, PollFrequency: c.PollInterval, StateDir: c.StateDir, Logf: logf}
	if gopts.StateDir == "" {
		gopts.StateDir = filepath.Dir(file.Path)
	}
	if dest != nil {
		if client, err = p.armClient(dest.gallery.SubscriptionID, cred); err != nil {
			return nil, err
		}
		if dest.gallery.Location == "" {
			if dest.gallery.Location, err = client.GalleryLocation(ctx, dest.gallery); err != nil {
				return nil, credErr(fmt.Errorf("read gallery %s: %w", dest.gallery.ID(), err))
			}
		}
		acct := c.StorageAccountID
		if acct == "" {
			name := c.StorageAccount
			if name == "" {
				name = accountFromEndpoint(blobURL)
			}
			rg := c.StorageResourceGroup
			if rg == "" {
				rg = dest.gallery.ResourceGroup
			}
			acct = fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/%s", dest.gallery.SubscriptionID, rg, name)
		}
		source := gallery.Source{StorageAccountID: acct, URI: blobURL}
		version := c.Destination.ImageVersion
		if version == "" {
			var defs []string
			for _, g := range dest.gens {
				defs = append(defs, dest.names[g])
			}
			existing, same, err := gallery.ExistingVersions(ctx, client, dest.gallery, defs, source)
			if err != nil {
				return nil, credErr(err)
			}
			if same != "" {
				version = same
			} else if version, err = gallery.DateVersion(releaseOf(v), time.Now(), existing); err != nil {
				return nil, err
			}
			ui.Sayf("Image version %s (from the release version and today's date)", version)
		}
		plan, err := gallery.Build(p.publishRequest(v, dest, version, source))
		if err != nil {
			return nil, err
		}
		ui.Sayf("Checking gallery %s", dest.gallery.ID())
		if st, err = gallery.Check(ctx, client, plan, gopts); err != nil {
			return nil, credErr(err)
		}
		for _, d := range st.Definitions {
			ui.Sayf("  definition %s (%s %s): %s", d.Name, d.Architecture, d.HyperVGeneration, d.Action)
		}
		for _, vs := range st.Versions {
			ui.Sayf("  version %s of %s: %s", vs.Name, vs.Definition, vs.Action)
		}
	}

	// Upload.
	var up pageblob.Result
	if c.DryRun {
		ui.Sayf("dry run, not sent: PUT %s (page blob, %d bytes, from %s), then Put Page for its non-zero pages and Set Blob Properties (Content-MD5)", blobURL, src.Size(), file.Path)
		up = pageblob.Result{URL: blobURL, Size: src.Size()}
	} else {
		ui.Sayf("Uploading %s to %s", file.Path, blobURL)
		progress := packerutil.NewProgress(ui, filepath.Base(blobName))
		up, err = pageblob.Upload(ctx, tg, src, pageblob.Options{Parallel: c.Parallel, Overwrite: c.OverwriteBlob,
			OverwriteOption: "overwrite_blob = true (or packer build -force)", CreateContainerOption: "create_container = true",
			Progress: progress.Update, Logf: logf})
		progress.Close()
		if err != nil {
			return nil, credErr(err)
		}
		if !up.Reused {
			ui.Sayf("Uploaded %d bytes in %d requests (%d bytes of data, %d checked already present); MD5 %s", up.BytesSent, up.Requests, up.DataBytes, up.Verified, up.MD5Hex)
		}
	}

	var res gallery.Result
	if dest != nil {
		if res, err = gallery.Apply(ctx, client, st, gopts); err != nil {
			return nil, credErr(err)
		}
	}
	return p.artifactOut(a, file, up, res, dest), nil
}

func (p *PostProcessor) cred() (azcore.TokenCredential, string, error) {
	if p.credential != nil {
		return p.credential, "test credential", nil
	}
	return p.config.credential()
}

func (p *PostProcessor) armClient(sub string, cred azcore.TokenCredential) (gallery.Client, error) {
	cc, err := cloudConfig(p.config.CloudEnvironmentName, p.config.ResourceManagerEndpoint, p.config.ActiveDirectoryAuthorityHost)
	if err != nil {
		return nil, err
	}
	opts := &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Cloud: cc, Transport: p.armTransport,
		Retry: policy.RetryOptions{MaxRetries: int32(p.config.MaxRetries)}}}
	return gallery.NewARM(sub, cred, opts)
}

func (p *PostProcessor) publishRequest(v *variant.Variant, d *destination, version string, src gallery.Source) gallery.Publish {
	c := &p.config
	arch := v.Arch
	if arch == "" {
		arch = "x86_64"
	}
	publisher := cmp.Or(c.Identifier.Publisher, v.DeliveryString("marketplace.publisher"), v.Distro, "osimage")
	offer := cmp.Or(c.Identifier.Offer, v.DeliveryString("marketplace.offer"), v.Image, "osimage")
	defs := map[string]gallery.DefinitionSpec{}
	for gen, name := range d.names {
		sku := name
		if c.Identifier.SKU != "" {
			sku = c.Identifier.SKU
			if len(d.names) > 1 {
				sku += "-" + strings.ToLower(strings.Replace(gen, "V", "gen", 1))
			}
		}
		defs[gen] = gallery.DefinitionSpec{Name: name, Identifier: gallery.Identifier{Publisher: publisher, Offer: offer, SKU: sku}}
	}
	var regions []gallery.Region
	for _, r := range c.Destination.TargetRegions {
		regions = append(regions, gallery.Region{Name: r.Name, Replicas: r.Replicas, StorageAccountType: r.StorageAccountType})
	}
	return gallery.Publish{
		Gallery: d.gallery, Arch: arch, Asked: d.gens, Definitions: defs,
		Description: cmp.Or(c.Description, v.Description), SecurityType: c.SecurityType,
		DiskControllerTypes: c.DiskControllerTypes, AcceleratedNetworking: c.accelNets,
		Version: version, Source: src, Regions: regions,
		StorageAccountType: cmp.Or(c.Destination.StorageAccountType, "Standard_LRS"),
		Shallow:            c.Destination.UseShallowReplication, ExcludeFromLatest: c.ExcludeFromLatest, EndOfLifeDate: c.eol,
	}
}

func releaseOf(v *variant.Variant) string {
	return cmp.Or(v.ReleaseVer, v.DistroVersion, "0")
}

// pickInput prefers the VHD, else the raw disk.
func pickInput(a *artifact.Artifact) (artifact.File, error) {
	if len(a.ByRole(artifact.RoleVHD)) > 0 {
		return a.One(artifact.RoleVHD)
	}
	return a.One(artifact.RoleDisk)
}

// defaultBlobName is unique per variant and build, stable for one disk.
func defaultBlobName(v *variant.Variant, path string) string {
	stamp := "0"
	if st, err := os.Stat(path); err == nil {
		stamp = st.ModTime().UTC().Format("20060102150405")
	}
	base := v.Key
	if base == "" {
		base = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return base + "-" + stamp + ".vhd"
}

// accountFromEndpoint takes the storage account from a blob endpoint or
// blob URL: https://ACCT.blob.core.windows.net/... or, path style as
// Azurite serves it, http://127.0.0.1:10000/ACCT/...
func accountFromEndpoint(ep string) string {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return ""
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil || host == "localhost" {
		seg := strings.Split(strings.Trim(u.Path, "/"), "/")
		return seg[0]
	}
	return strings.SplitN(host, ".", 2)[0]
}

func (p *PostProcessor) artifactOut(a *artifact.Artifact, in artifact.File, up pageblob.Result, res gallery.Result, d *destination) *Artifact {
	out := a.Clone()
	out.Builder = BuilderID
	out.ID = up.URL
	if out.Extra == nil {
		out.Extra = map[string]string{}
	}
	out.Extra["blob_url"] = up.URL
	out.Extra["blob_md5"] = up.MD5Hex
	out.Extra["blob_size"] = strconv.FormatInt(up.Size, 10)
	out.Extra["blob_reused"] = strconv.FormatBool(up.Reused)
	out.Extra["dry_run"] = strconv.FormatBool(p.config.DryRun)
	var ids []string
	for _, v := range res.Versions {
		gen := strings.ToLower(v.HyperVGeneration)
		out.Extra["gallery_version_id_"+gen] = v.ID
		out.Extra["gallery_version_regions_"+gen] = strings.Join(v.Regions, ",")
		out.Extra["gallery_version_action_"+gen] = v.Action
		out.Extra["gallery_image_version"] = v.Version
		ids = append(ids, v.ID)
	}
	if len(ids) > 0 {
		out.ID = ids[len(ids)-1]
		out.Extra["gallery_version_ids"] = strings.Join(ids, ",")
	}
	if out.Generated == nil {
		out.Generated = map[string]string{}
	}
	for k, v := range out.Extra {
		if strings.HasPrefix(k, "blob_") || strings.HasPrefix(k, "gallery_") {
			out.Generated[k] = v
		}
	}
	return &Artifact{Artifact: out, versions: res.Versions, dest: d}
}
