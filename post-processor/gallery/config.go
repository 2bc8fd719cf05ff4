//go:generate packer-sdc mapstructure-to-hcl2 -type Config,GalleryDestination,TargetRegion,Identifier
//go:generate packer-sdc struct-markdown

package gallery

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery"
	"github.com/osimage/packer-plugin-osimage/internal/azure/pageblob"
	"github.com/osimage/packer-plugin-osimage/internal/packerutil"
)

// Config is the configuration of the osimage-gallery post-processor.
type Config struct {
	common.PackerConfig      `mapstructure:",squash"`
	packerutil.VariantConfig `mapstructure:",squash"`

	// Azure subscription of the gallery and, by default, of the storage
	// account. Defaults to the subscription in the gallery's resource id
	// (the variant target's `resource_urn`).
	SubscriptionID string `mapstructure:"subscription_id"`
	// Tenant of the service principal given by `client_id`.
	TenantID string `mapstructure:"tenant_id"`
	// Application (client) id: of a service principal with
	// `client_secret` or `client_jwt`; of an app federated with GitHub
	// Actions with the OIDC options; alone, of a user-assigned managed
	// identity, or of workload identity when `AZURE_FEDERATED_TOKEN_FILE`
	// is set (the error lists what is missing when neither works). The
	// build says which source authenticated. Without `client_id`, Azure
	// credentials are looked up in this order: environment
	// (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_CLIENT_SECRET` or
	// `AZURE_CLIENT_CERTIFICATE_PATH`), workload identity
	// (`AZURE_FEDERATED_TOKEN_FILE`), managed identity, the Azure CLI, the
	// Azure Developer CLI, then Azure PowerShell. When none works, the error
	// lists the sources tried.
	ClientID string `mapstructure:"client_id"`
	// Secret of the service principal. Never printed.
	ClientSecret string `mapstructure:"client_secret"`
	// A signed client assertion (JWT) for `client_id`, exchanged for
	// tokens (ClientAssertionCredential). Never printed. It is used as
	// given: for builds longer than its lifetime use the OIDC options.
	ClientJWT string `mapstructure:"client_jwt"`
	// URL of an OIDC ID token service, as GitHub Actions has: with
	// `client_id` and `tenant_id` (and no secret or `client_jwt`), every
	// token request fetches a fresh ID token there (audience
	// `api://AzureADTokenExchange`) and exchanges it with Microsoft Entra
	// ID, so builds longer than the ID token's 5 minutes keep
	// authenticating. Defaults to `ACTIONS_ID_TOKEN_REQUEST_URL` (set in a
	// GitHub Actions job with `permissions: id-token: write`). The Azure
	// CLI login of `azure/login` ends with GitHub's token
	// (AADSTS700024); this does not.
	OIDCRequestURL string `mapstructure:"oidc_request_url"`
	// Bearer token for `oidc_request_url`. Never printed. Defaults to
	// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
	OIDCRequestToken string `mapstructure:"oidc_request_token"`
	// Use only the Azure CLI's login (`az login`). Defaults to `false`.
	UseAzureCLIAuth bool `mapstructure:"use_azure_cli_auth"`
	// Azure cloud: `Public` (default), `USGovernment` or `China`.
	CloudEnvironmentName string `mapstructure:"cloud_environment_name"`
	// Resource Manager endpoint, replacing the cloud's (for sovereign or
	// local test endpoints), e.g. `https://127.0.0.1:8443/`.
	ResourceManagerEndpoint string `mapstructure:"resource_manager_endpoint"`
	// Microsoft Entra authority host, replacing the cloud's.
	ActiveDirectoryAuthorityHost string `mapstructure:"active_directory_authority_host"`

	// Storage account the VHD is uploaded to (page blob). Required unless
	// `storage_connection_string` names the account.
	StorageAccount string `mapstructure:"storage_account"`
	// Resource group of the storage account, for its resource id (the
	// version's source). Defaults to the gallery's resource group.
	StorageResourceGroup string `mapstructure:"storage_resource_group"`
	// Resource id of the storage account. Defaults to
	// `/subscriptions/<subscription_id>/resourceGroups/<storage_resource_group>/providers/Microsoft.Storage/storageAccounts/<storage_account>`.
	StorageAccountID string `mapstructure:"storage_account_id"`
	// Blob endpoint of the account. Defaults to
	// `https://<storage_account>.blob.<cloud storage suffix>`. Unused with
	// `storage_connection_string`, whose `BlobEndpoint=` (Azurite's
	// development connection string has one) or account name says where
	// the blob goes; set it with `storage_sas_token` or an Azure AD
	// credential for a local or sovereign endpoint, e.g. Azurite's
	// `http://127.0.0.1:10000/devstoreaccount1`.
	BlobEndpoint string `mapstructure:"blob_endpoint"`
	// Storage connection string (account key or SAS). Never printed. When
	// neither this nor `storage_sas_token` is set, the Azure credential is
	// used (it needs the Storage Blob Data Contributor role).
	StorageConnectionString string `mapstructure:"storage_connection_string"`
	// SAS token for the container (the query string, with or without `?`).
	// Never printed.
	StorageSASToken string `mapstructure:"storage_sas_token"`
	// Container of the blob. Defaults to `osimage`.
	Container string `mapstructure:"container"`
	// Create the container when it is missing. Defaults to `false`: a
	// missing container is an error.
	CreateContainer bool `mapstructure:"create_container"`
	// Blob name. Defaults to `<variant key>-<first 16 hex digits of the
	// disk's sha256>.vhd` when the artifact records the digest (osimage-disk
	// does), else `<variant key>-<disk modification time
	// YYYYMMDDhhmmss>.vhd` (the disk's base name without a variant): unique
	// per variant and build, stable for one disk, so a re-run resumes or
	// reuses instead of uploading again. An unfinished upload is resumed
	// when it is of the same disk: the same sha256 when the artifact
	// records one, else the same size and modification time.
	BlobName string `mapstructure:"blob_name"`
	// Replace an existing blob that differs from the disk. Defaults to
	// `false`: an identical blob (same size and Content-MD5) is reused, a
	// different one is an error. `packer build -force` sets it.
	OverwriteBlob bool `mapstructure:"overwrite_blob"`
	// Concurrent Put Page requests. Defaults to azcopy's default: 16 per
	// CPU, at least 32, at most 300.
	Parallel int `mapstructure:"parallel"`
	// Retries of a failed request (429, 5xx, dropped connections), with the
	// Azure SDK's exponential backoff. Defaults to `8`.
	MaxRetries int `mapstructure:"max_retries"`

	// Name of the variant's `azure-compute-gallery` target to publish to
	// when it has more than one. Defaults to the only one; with several and
	// no name, the build stops with an error listing them.
	TargetName string `mapstructure:"target"`
	// Where the version goes. Defaults to the variant's target with
	// interface type `azure-compute-gallery` (the one `target` names):
	// gallery from its `resource_urn`, definition from its `image_name`;
	// fields set here win, and a target value of `*` counts as not given.
	// Without a gallery (no target, no gallery_name), the VHD is only
	// uploaded.
	Destination GalleryDestination `mapstructure:"shared_image_gallery_destination"`
	// Hyper-V generations to publish: `["V1", "V2"]` publishes one blob into
	// a V1 and a V2 definition (x86_64 only; aarch64 is always V2 only).
	// Defaults to the variant's `hyperv_generation`, else `V2`.
	HyperVGenerations []string `mapstructure:"hyperv_generations"`
	// Publisher, offer and sku of definitions this post-processor creates.
	// Defaults: publisher from the variant's `delivery.marketplace.publisher`,
	// else its distro (else `osimage`); offer from
	// `delivery.marketplace.offer`, else the variant's image; sku the
	// definition's name.
	Identifier Identifier `mapstructure:"identifier"`
	// Description of created definitions. Defaults to the variant's.
	Description string `mapstructure:"description"`
	// `SecurityType` feature of created V2 definitions: `Standard`,
	// `TrustedLaunchSupported`, `TrustedLaunch`, `ConfidentialVMSupported`,
	// `ConfidentialVM` or `TrustedLaunchAndConfidentialVmSupported`.
	// Defaults to `TrustedLaunchSupported`.
	SecurityType string `mapstructure:"security_type"`
	// `DiskControllerTypes` feature of created definitions, a
	// comma-separated list of `SCSI` and `NVMe`. Defaults to `SCSI, NVMe`
	// on V2 definitions and none on V1: NVMe needs Hyper-V generation 2, so
	// `NVMe` with a V1 generation is an error.
	DiskControllerTypes string `mapstructure:"disk_controller_types"`
	// `IsAcceleratedNetworkSupported` feature of created definitions.
	// Defaults to `true`.
	AcceleratedNetworking *bool `mapstructure:"accelerated_networking"`
	// How long to wait for each version's creation (replication) before
	// giving up; the run can be repeated and resumes polling. Defaults to
	// `60m`.
	Timeout time.Duration `mapstructure:"shared_image_gallery_timeout"`
	// How often long-running operations are polled, at least `1s` (the
	// Azure SDK refuses more often). Defaults to `30s`.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// End of life date of the version (RFC 3339 or YYYY-MM-DD).
	EndOfLifeDate string `mapstructure:"shared_gallery_image_version_end_of_life_date"`
	// Keep the version out of "latest". Defaults to `false`.
	ExcludeFromLatest bool `mapstructure:"shared_gallery_image_version_exclude_from_latest"`
	// Delete and recreate an existing version whose source is another blob.
	// Defaults to `false`: such a version is an error, and one with the same
	// source is reported and skipped. `packer build -force` sets it.
	Force bool `mapstructure:"force"`
	// Print every request (blob, definitions, versions, regions) instead of
	// sending it; read-only requests are still made. Defaults to `false`.
	DryRun bool `mapstructure:"dry_run"`
	// Directory for the resume tokens of versions being created. Defaults
	// to the input disk's directory.
	StateDir string `mapstructure:"state_dir"`

	ctx       interpolate.Context
	eol       *time.Time
	gallery   gallery.Gallery
	haveGal   bool
	gens      []string
	accelNets bool
}

// GalleryDestination is named and shaped like packer-plugin-azure's
// `shared_image_gallery_destination`.
type GalleryDestination struct {
	// Subscription of the gallery.
	Subscription string `mapstructure:"subscription"`
	// Resource group of the gallery.
	ResourceGroup string `mapstructure:"resource_group"`
	// Gallery name.
	GalleryName string `mapstructure:"gallery_name"`
	// Region of the gallery, where definitions and versions are created.
	// Defaults to the gallery's own, read from Azure.
	Location string `mapstructure:"location"`
	// Image definition name (of the variant's generation, or V2).
	ImageName string `mapstructure:"image_name"`
	// Image definition name for the V1 version when `hyperv_generations`
	// lists both V1 and V2.
	Gen1ImageName string `mapstructure:"gen1_image_name"`
	// Version `major.minor.patch`, each part at most 2147483647. Defaults to
	// AlmaLinux's scheme made collision-free:
	// `<release major>.<minor>.<YYYYMMDD><NN>` from the variant's
	// `release_ver` and today's date, NN one above the highest that day; a
	// version already made from the same blob is reused.
	ImageVersion string `mapstructure:"image_version"`
	// Regions to replicate to. The gallery's region is always included.
	TargetRegions []TargetRegion `mapstructure:"target_region"`
	// Default replica storage: `Standard_LRS` (default), `Standard_ZRS`,
	// `Premium_LRS` or `PremiumV2_LRS`.
	StorageAccountType string `mapstructure:"storage_account_type"`
	// Shallow replication (faster; for images up to 32 GiB, for testing).
	// Azure allows it only in the gallery's own region with one replica, so
	// with it `target_region` is at most that region with `replicas = 1`.
	// Defaults to `false`.
	UseShallowReplication bool `mapstructure:"use_shallow_replication"`
}

// TargetRegion is one replication region.
type TargetRegion struct {
	// Region name, e.g. `eastus`.
	Name string `mapstructure:"name" required:"true"`
	// Replicas in this region, 1 to 100. Defaults to `1`.
	Replicas int32 `mapstructure:"replicas"`
	// Replica storage in this region; defaults to the destination's.
	StorageAccountType string `mapstructure:"storage_account_type"`
}

// Identifier is a definition's publisher, offer and sku.
type Identifier struct {
	Publisher string `mapstructure:"publisher"`
	Offer     string `mapstructure:"offer"`
	SKU       string `mapstructure:"sku"`
}

// Prepare decodes and validates the configuration; nothing is contacted.
func (c *Config) Prepare(raws ...interface{}) error {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "osimage-gallery",
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...)
	if err != nil {
		return err
	}
	var errs *packersdk.MultiError
	add := func(e error) { errs = packersdk.MultiErrorAppend(errs, e) }
	if err := c.PrepareVariant(); err != nil {
		add(err)
	}
	if c.PackerForce {
		c.Force, c.OverwriteBlob = true, true
	}
	if c.Container == "" {
		c.Container = "osimage"
	}
	if c.StorageAccount == "" && c.StorageConnectionString == "" && c.BlobEndpoint == "" {
		add(fmt.Errorf("storage_account: required (or storage_connection_string, or blob_endpoint)"))
	}
	if c.StorageConnectionString != "" && c.StorageSASToken != "" {
		add(fmt.Errorf("storage_connection_string and storage_sas_token exclude each other"))
	}
	if c.ClientSecret != "" && (c.ClientID == "" || c.TenantID == "") {
		add(fmt.Errorf("client_secret needs client_id and tenant_id"))
	}
	if c.ClientJWT != "" && (c.ClientID == "" || c.TenantID == "") {
		add(fmt.Errorf("client_jwt needs client_id and tenant_id"))
	}
	if c.ClientJWT != "" && c.ClientSecret != "" {
		add(fmt.Errorf("client_secret and client_jwt exclude each other"))
	}
	if (c.OIDCRequestURL != "") != (c.OIDCRequestToken != "") {
		add(fmt.Errorf("oidc_request_url and oidc_request_token go together (one is set)"))
	}
	if c.OIDCRequestURL != "" {
		if u, err := url.Parse(c.OIDCRequestURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			add(fmt.Errorf("oidc_request_url %q: want an http(s) URL", c.OIDCRequestURL))
		}
		if c.ClientID == "" || c.TenantID == "" {
			add(fmt.Errorf("oidc_request_url needs client_id and tenant_id (the app federated with the ID token's issuer)"))
		}
	}
	if c.BlobEndpoint != "" {
		if u, err := url.Parse(c.BlobEndpoint); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			add(fmt.Errorf("blob_endpoint %q: want an http(s) URL", c.BlobEndpoint))
		}
	}
	if c.ResourceManagerEndpoint != "" {
		if u, err := url.Parse(c.ResourceManagerEndpoint); err != nil || u.Scheme != "https" || u.Host == "" {
			add(fmt.Errorf("resource_manager_endpoint %q: want an https URL (bearer tokens need TLS)", c.ResourceManagerEndpoint))
		}
	}
	if _, err := cloudConfig(c.CloudEnvironmentName, "", ""); err != nil {
		add(err)
	}
	if c.Parallel < 0 || c.Parallel > 300 {
		add(fmt.Errorf("parallel = %d: want 1 to 300", c.Parallel))
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 8
	}
	if c.Timeout == 0 {
		c.Timeout = 60 * time.Minute
	}
	if c.PollInterval == 0 {
		c.PollInterval = 30 * time.Second
	} else if c.PollInterval < time.Second {
		// azcore's PollUntilDone refuses a frequency under 1s (outside
		// go test), after the create request was sent.
		add(fmt.Errorf("poll_interval = %s: want at least 1s (the Azure SDK polls no more often)", c.PollInterval))
	}
	if c.Timeout < 0 {
		add(fmt.Errorf("shared_image_gallery_timeout = %s: want a positive duration", c.Timeout))
	}
	if c.SecurityType == "" {
		c.SecurityType = "TrustedLaunchSupported"
	} else if !contains(gallery.SecurityTypes, c.SecurityType) {
		add(fmt.Errorf("security_type %q: want one of %s", c.SecurityType, strings.Join(gallery.SecurityTypes, ", ")))
	}
	if c.DiskControllerTypes != "" {
		if _, err := gallery.CheckDiskControllerTypes(c.DiskControllerTypes); err != nil {
			add(fmt.Errorf("disk_controller_types: %w", err))
		}
	}
	c.accelNets = c.AcceleratedNetworking == nil || *c.AcceleratedNetworking
	if c.EndOfLifeDate != "" {
		t, err := time.Parse(time.RFC3339, c.EndOfLifeDate)
		if err != nil {
			t, err = time.Parse("2006-01-02", c.EndOfLifeDate)
		}
		if err != nil {
			add(fmt.Errorf("shared_gallery_image_version_end_of_life_date %q: want RFC 3339 (2030-05-31T00:00:00Z) or YYYY-MM-DD", c.EndOfLifeDate))
		} else {
			c.eol = &t
		}
	}
	for _, g := range c.HyperVGenerations {
		n, err := gallery.NormalizeGeneration(g)
		if err != nil {
			add(fmt.Errorf("hyperv_generations: %w", err))
			continue
		}
		c.gens = append(c.gens, n)
	}
	d := &c.Destination
	if v := d.ImageVersion; v != "" {
		if err := gallery.CheckVersion(v); err != nil {
			add(fmt.Errorf("shared_image_gallery_destination.image_version: %w", err))
		}
	}
	if t := d.StorageAccountType; t != "" && !contains(gallery.StorageAccountTypes, t) {
		add(fmt.Errorf("shared_image_gallery_destination.storage_account_type %q: want one of %s", t, strings.Join(gallery.StorageAccountTypes, ", ")))
	}
	if d.UseShallowReplication {
		// Azure replicates shallowly only within the source region, one
		// replica (packer-plugin-azure validates the same).
		if len(d.TargetRegions) > 1 {
			add(fmt.Errorf("shared_image_gallery_destination.use_shallow_replication: Azure allows it in the gallery's region only; %d target_region blocks given, want at most that one", len(d.TargetRegions)))
		}
		for _, r := range d.TargetRegions {
			if r.Replicas > 1 {
				add(fmt.Errorf("shared_image_gallery_destination.use_shallow_replication: target_region %q: replicas = %d, want 1 (shallow replication keeps one replica)", r.Name, r.Replicas))
			}
			if d.Location != "" && r.Name != "" && !strings.EqualFold(strings.ReplaceAll(r.Name, " ", ""), strings.ReplaceAll(d.Location, " ", "")) {
				add(fmt.Errorf("shared_image_gallery_destination.use_shallow_replication: target_region %q is not the gallery's region %q", r.Name, d.Location))
			}
		}
	}
	if nvme, _ := gallery.CheckDiskControllerTypes(c.DiskControllerTypes); nvme && c.DiskControllerTypes != "" && contains(c.gens, "V1") {
		add(fmt.Errorf("disk_controller_types %q with hyperv_generations %v: NVMe needs generation V2; give \"SCSI\" or publish V2 only", c.DiskControllerTypes, c.HyperVGenerations))
	}
	for i, r := range d.TargetRegions {
		if r.Name == "" {
			add(fmt.Errorf("target_region[%d]: name is required", i))
		}
		if r.Replicas == 0 {
			d.TargetRegions[i].Replicas = 1
		} else if r.Replicas < 1 || r.Replicas > 100 {
			add(fmt.Errorf("target_region %q: replicas = %d, want 1 to 100", r.Name, r.Replicas))
		}
		if t := r.StorageAccountType; t != "" && !contains(gallery.StorageAccountTypes, t) {
			add(fmt.Errorf("target_region %q: storage_account_type %q, want one of %s", r.Name, t, strings.Join(gallery.StorageAccountTypes, ", ")))
		}
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

// secrets are the configured values that are never printed.
func (c *Config) secrets() []string {
	out := pageblob.Secrets(pageblob.ClientConfig{ConnectionString: c.StorageConnectionString, SAS: c.StorageSASToken})
	for _, sec := range []string{c.ClientSecret, c.ClientJWT, c.OIDCRequestToken} {
		if sec != "" {
			out = append(out, sec)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
