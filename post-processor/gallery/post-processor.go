// Package gallery is the Packer glue of the osimage-gallery post-processor:
// it finds the VHD (or raw disk) by role and the destination among the
// variant's targets, then calls internal/azure/pageblob to upload and
// internal/azure/gallery to publish.
package gallery

import (
	"cmp"
	"context"
	"fmt"
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
	"github.com/osimage/packer-plugin-osimage/internal/sbom"
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
	// authTransport, when set, carries token requests to Microsoft Entra
	// ID (tests trust a local token endpoint through it).
	authTransport policy.Transporter
	// announce says which credential source authenticated (set per run).
	announce func(string)
}

func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

func (p *PostProcessor) Configure(raws ...interface{}) error { return p.config.Prepare(raws...) }

// destination resolves where the version goes from the variant's
// azure-compute-gallery target (the one named by `target`, or the only one)
// and the explicit settings; nil means upload only.
func (c *Config) destination(v *variant.Variant) (*gallery.Destination, error) {
	t, err := v.PickTarget(variant.InterfaceAzureComputeGallery, c.TargetName)
	if err != nil {
		return nil, err
	}
	d := c.Destination
	r := gallery.DestinationRequest{Variant: v.Key, Arch: v.Arch, Generations: c.gens, VariantGeneration: v.HyperVGeneration,
		Settings: gallery.DestinationSettings{Subscription: d.Subscription, ResourceGroup: d.ResourceGroup, GalleryName: d.GalleryName,
			Location: d.Location, ImageName: d.ImageName, Gen1ImageName: d.Gen1ImageName, DefaultSubscription: c.SubscriptionID}}
	if t != nil {
		r.Target = &gallery.Target{Name: t.Name, ResourceURN: t.ResourceURN, ImageName: t.ImageName}
	}
	return gallery.ResolveDestination(r)
}

func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, in packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	out, err := p.run(ctx, ui, in)
	if err != nil {
		// Whatever failed, no SAS, account key or client secret leaves in
		// the message (Packer prints it and logs it with PACKER_LOG=1).
		return nil, false, false, pageblob.Redact(fmt.Errorf("osimage-gallery: %w", err), p.config.secrets())
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
	// With a release state, the variant's record decides what is left:
	// nothing, a promotion, or the publish below (recorded after it).
	sr, err := p.planState(ctx, v)
	if err != nil {
		return nil, err
	}
	if sr != nil {
		if out, handled, err := p.runState(ctx, ui, a, sr); handled {
			return out, err
		}
		if sr.exclude {
			ui.Sayf("%s: a pre-release (stage %s): new versions are excluded from latest until the release stage", v.Key, sr.stage)
		}
	}
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
	if file.SHA256 != "" {
		src.SetDigest(file.SHA256) // the disk's identity for resuming
	}
	dest, err := c.destination(v)
	if err != nil {
		return nil, err
	}
	logf := func(f string, args ...any) { ui.Say(fmt.Sprintf(f, args...)) }
	p.announce = func(source string) { ui.Sayf("Authenticated to Azure with %s", source) }

	// Credentials: an Azure AD credential when ARM or storage need one.
	var cred azcore.TokenCredential
	var tried string
	if dest != nil || (c.StorageConnectionString == "" && c.StorageSASToken == "") {
		if cred, tried, err = p.cred(); err != nil {
			return nil, fmt.Errorf("Azure credential (%s): %w", tried, err)
		}
	}
	credErr := func(err error) error { return credentialFailure(err, tried) }

	blobName := c.BlobName
	if blobName == "" {
		blobName = defaultBlobName(v, file)
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
		if client, err = p.armClient(dest.Gallery.SubscriptionID, cred); err != nil {
			return nil, err
		}
		if dest.Gallery.Location == "" {
			if dest.Gallery.Location, err = client.GalleryLocation(ctx, dest.Gallery); err != nil {
				return nil, credErr(fmt.Errorf("read gallery %s: %w", dest.Gallery.ID(), err))
			}
		}
		acct := gallery.StorageAccountID(c.StorageAccountID, c.StorageAccount, c.StorageResourceGroup, blobURL, dest.Gallery)
		source := gallery.Source{StorageAccountID: acct, URI: blobURL}
		version := c.Destination.ImageVersion
		if version == "" {
			existing, same, err := gallery.ExistingVersions(ctx, client, dest.Gallery, dest.Definitions(), source)
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
		req := p.publishRequest(v, dest, version, source)
		if sr != nil {
			req.ExcludeFromLatest = sr.exclude
		}
		plan, err := gallery.Build(req)
		if err != nil {
			return nil, err
		}
		ui.Sayf("Checking gallery %s", dest.Gallery.ID())
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
	var sidecars map[string]string
	if c.DryRun {
		ui.Sayf("dry run, not sent: PUT %s (page blob, %d bytes, from %s), then Put Page for its non-zero pages and Set Blob Properties (Content-MD5)", blobURL, src.Size(), file.Path)
		up = pageblob.Result{URL: blobURL, Size: src.Size()}
	} else {
		ui.Sayf("Uploading %s to %s", file.Path, blobURL)
		progress := packerutil.NewProgress(ui, filepath.Base(blobName))
		up, err = pageblob.Upload(ctx, tg, src, pageblob.Options{Parallel: c.Parallel, Overwrite: c.OverwriteBlob,
			OverwriteOption: "overwrite_blob = true (or packer build -force)", CreateContainerOption: "create_container = true",
			Progress: progress.Update, Logf: logf,
			BeforeChange: func(how string) error { return st.BlobChanging(blobURL, how, gopts) }})
		progress.Close()
		if err != nil {
			return nil, credErr(err)
		}
		if !up.Reused {
			ui.Sayf("Uploaded %d bytes in %d requests (%d bytes of data, %d checked already present); MD5 %s", up.BytesSent, up.Requests, up.DataBytes, up.Verified, up.MD5Hex)
		}
		if sidecars, err = putSidecars(ctx, ui, tg, a, file, blobName, !up.Reused); err != nil {
			return nil, err
		}
	}

	var res gallery.Result
	if dest != nil {
		if res, err = gallery.Apply(ctx, client, st, gopts); err != nil {
			return nil, credErr(err)
		}
	}
	if sr != nil && !c.DryRun {
		if err := recordPublish(ctx, sr, file, up, res); err != nil {
			return nil, fmt.Errorf("published, but recording it in the release state failed (the next run finds the blob and the versions and records them): %w", err)
		}
		ui.Sayf("Recorded the publish of %s to %s in the release state (%s)", v.ReleaseName, sr.target, sr.rec)
	}
	out := p.artifactOut(a, file, up, res, dest)
	for k, u := range sidecars {
		out.Extra[k] = u
	}
	return out, nil
}

// putSidecars uploads the image's SBOM and the uploaded file's detached
// signature (made by osimage-vhd's signing_key) next to the blob, as block
// blobs named after it: <blob>.spdx.json (or .cdx.json) and <blob>.sig. It
// returns their URLs by state key (sbom_url, signature_url).
func putSidecars(ctx context.Context, ui packersdk.Ui, tg pageblob.Target, a *artifact.Artifact, in artifact.File, blobName string, replace bool) (map[string]string, error) {
	out := map[string]string{}
	var files []struct{ key, path, name, ctype string }
	if fs := a.ByRole(artifact.RoleSBOM); len(fs) == 1 {
		files = append(files, struct{ key, path, name, ctype string }{"sbom_url", fs[0].Path, blobName + sbom.Ext(fs[0].Format), sbom.MediaType(fs[0].Format)})
	}
	for _, f := range a.ByRole(artifact.RoleSig) {
		if f.Path == in.Path+".sig" {
			files = append(files, struct{ key, path, name, ctype string }{"signature_url", f.Path, blobName + ".sig", "text/plain"})
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return nil, err
		}
		u, wrote, err := tg.PutSidecar(ctx, f.name, data, f.ctype, replace)
		if err != nil {
			return nil, err
		}
		how := "already there"
		if wrote {
			how = "uploaded"
		}
		ui.Sayf("%s next to the blob: %s (%s)", strings.TrimSuffix(f.key, "_url"), u, how)
		out[f.key] = u
	}
	return out, nil
}

// cred returns the credential, marked so that its failures are recognised
// (credentialFailure), and the sources it tries.
func (p *PostProcessor) cred() (azcore.TokenCredential, string, error) {
	cred, tried := p.credential, "test credential"
	if cred == nil {
		var err error
		if cred, tried, err = p.config.credential(p.authTransport, p.announce); err != nil {
			return nil, tried, err
		}
	}
	return markedCredential{cred}, tried, nil
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

func (p *PostProcessor) publishRequest(v *variant.Variant, d *gallery.Destination, version string, src gallery.Source) gallery.Publish {
	c := &p.config
	arch := v.Arch
	if arch == "" {
		arch = "x86_64"
	}
	publisher := cmp.Or(c.Identifier.Publisher, v.DeliveryString("marketplace.publisher"), v.Distro, "osimage")
	offer := cmp.Or(c.Identifier.Offer, v.DeliveryString("marketplace.offer"), v.Image, "osimage")
	defs := map[string]gallery.DefinitionSpec{}
	for gen, name := range d.Names {
		sku := name
		if c.Identifier.SKU != "" {
			sku = c.Identifier.SKU
			if len(d.Names) > 1 {
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
		Gallery: d.Gallery, Arch: arch, Asked: d.Generations, Definitions: defs,
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

// defaultBlobName names the blob after the variant and the disk's sha256
// or modification time (gallery.DefaultBlobName).
func defaultBlobName(v *variant.Variant, f artifact.File) string {
	var mod time.Time
	if st, err := os.Stat(f.Path); err == nil {
		mod = st.ModTime()
	}
	return gallery.DefaultBlobName(v.Key, f.Path, mod, f.SHA256)
}

func (p *PostProcessor) artifactOut(a *artifact.Artifact, in artifact.File, up pageblob.Result, res gallery.Result, d *gallery.Destination) *Artifact {
	out := a.Clone()
	out.Builder = BuilderID
	up.URL = pageblob.URLWithoutQuery(up.URL) // never a SAS in the artifact
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
