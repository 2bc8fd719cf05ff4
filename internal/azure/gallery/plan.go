// Package gallery publishes a VHD blob into an Azure Compute Gallery: it
// plans, as plain data, the image definitions to ensure (one per Hyper-V
// generation and architecture) and the versions to create with their
// regions, checks the plan against the gallery before anything is
// uploaded, and then executes it through one narrow client interface over
// armcompute. It imports nothing from Packer.
//
// Design choice: plan as data, execute through Client. Checking and
// printing (dry run) read the same Plan that Apply executes, so what a dry
// run shows is what a real run does.
package gallery

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Gallery names the gallery.
type Gallery struct {
	SubscriptionID, ResourceGroup, Name string
	// Location is the gallery's region: new definitions and versions are
	// created there.
	Location string
}

// ID returns the gallery's ARM resource id.
func (g Gallery) ID() string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/galleries/%s", g.SubscriptionID, g.ResourceGroup, g.Name)
}

// ParseGalleryID reads /subscriptions/S/resourceGroups/R/providers/Microsoft.Compute/galleries/G.
func ParseGalleryID(id string) (Gallery, error) {
	p := strings.Split(strings.Trim(id, "/"), "/")
	if len(p) != 8 || !strings.EqualFold(p[0], "subscriptions") || !strings.EqualFold(p[2], "resourceGroups") ||
		!strings.EqualFold(p[4], "providers") || !strings.EqualFold(p[5], "Microsoft.Compute") || !strings.EqualFold(p[6], "galleries") {
		return Gallery{}, fmt.Errorf("gallery id %q: want /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Compute/galleries/<name>", id)
	}
	return Gallery{SubscriptionID: p[1], ResourceGroup: p[3], Name: p[7]}, nil
}

// Identifier is a definition's publisher/offer/sku, unique in a gallery.
type Identifier struct{ Publisher, Offer, SKU string }

// Definition is an image definition the plan needs.
type Definition struct {
	Name             string
	HyperVGeneration string // V1 or V2
	Architecture     string // x64 or Arm64
	Identifier       Identifier
	Description      string
	EULA             string
	// Features set when the definition is created.
	SecurityType          string // e.g. TrustedLaunchSupported (V2 only)
	DiskControllerTypes   string // e.g. "SCSI, NVMe"
	AcceleratedNetworking bool
}

// Region is one replication target.
type Region struct {
	Name               string
	Replicas           int32
	StorageAccountType string
}

// Source is the VHD blob a version is made from.
type Source struct {
	StorageAccountID string
	URI              string // without query string
}

// Version is one image version to create in one definition.
type Version struct {
	Definition         string
	Name               string
	Source             Source
	Regions            []Region
	StorageAccountType string
	Shallow            bool
	ExcludeFromLatest  bool
	EndOfLifeDate      *time.Time
}

// Plan is everything a publish does.
type Plan struct {
	Gallery     Gallery
	Definitions []Definition
	Versions    []Version
}

// Generations returns the Hyper-V generations an architecture is published
// as: aarch64 only as V2; x86_64 as asked (default V2).
func Generations(arch string, asked []string) ([]string, error) {
	if len(asked) == 0 {
		asked = []string{"V2"}
	}
	var out []string
	for _, g := range asked {
		n, err := NormalizeGeneration(g)
		if err != nil {
			return nil, err
		}
		if arch == "aarch64" && n != "V2" {
			return nil, fmt.Errorf("hyperv_generations: %s for aarch64: Azure runs Arm64 images as V2 only", g)
		}
		if !contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// NormalizeGeneration accepts V1/V2, gen1/gen2 and 1/2.
func NormalizeGeneration(g string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(g)) {
	case "v1", "gen1", "1":
		return "V1", nil
	case "v2", "gen2", "2":
		return "V2", nil
	}
	return "", fmt.Errorf("hyperv generation %q: want V1 or V2", g)
}

// AzureArch maps x86_64/aarch64 to Azure's x64/Arm64.
func AzureArch(arch string) (string, error) {
	switch arch {
	case "x86_64":
		return "x64", nil
	case "aarch64":
		return "Arm64", nil
	}
	return "", fmt.Errorf("architecture %q: want x86_64 or aarch64", arch)
}

var versionRE = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)$`)

// CheckVersion says whether v is a gallery version name: major.minor.patch,
// each part a 32-bit signed integer.
func CheckVersion(v string) error {
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return fmt.Errorf("image version %q: want major.minor.patch (digits and dots only)", v)
	}
	for i, part := range m[1:] {
		if _, err := strconv.ParseInt(part, 10, 32); err != nil {
			return fmt.Errorf("image version %q: %s part %s exceeds 2147483647, the largest Azure accepts", v, []string{"major", "minor", "patch"}[i], part)
		}
	}
	return nil
}

// StorageAccountTypes are the replica storage types a version accepts.
var StorageAccountTypes = []string{"Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS"}

// SecurityTypes are the values of a definition's SecurityType feature
// (Compute Gallery REST spec, GalleryImageFeature "SecurityType"; the
// values the portal and az sig image-definition create --features take).
var SecurityTypes = []string{"Standard", "TrustedLaunchSupported", "TrustedLaunch", "ConfidentialVMSupported", "ConfidentialVM", "TrustedLaunchAndConfidentialVmSupported"}

// DiskControllerTypes are the values of a definition's
// DiskControllerTypes feature, a comma-separated list of them.
var DiskControllerTypes = []string{"SCSI", "NVMe"}

// DefaultDiskControllerTypes are those of a V2 definition when none are
// given; a V1 definition gets none (NVMe needs V2, as AgentBaker does).
const DefaultDiskControllerTypes = "SCSI, NVMe"

// CheckDiskControllerTypes checks a comma-separated list of disk
// controller types and reports whether it holds NVMe.
func CheckDiskControllerTypes(list string) (nvme bool, err error) {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		switch {
		case strings.EqualFold(t, "NVMe"):
			nvme = true
		case strings.EqualFold(t, "SCSI"):
		default:
			return false, fmt.Errorf("disk controller type %q: want a comma-separated list of %s", t, strings.Join(DiskControllerTypes, ", "))
		}
	}
	return nvme, nil
}

// Validate checks the plan without any I/O.
func (p Plan) Validate() error {
	var errs []error
	g := p.Gallery
	if g.SubscriptionID == "" || g.ResourceGroup == "" || g.Name == "" {
		errs = append(errs, fmt.Errorf("gallery: subscription, resource group and gallery name are required (got %q/%q/%q)", g.SubscriptionID, g.ResourceGroup, g.Name))
	}
	defs := map[string]Definition{}
	ids := map[Identifier]string{}
	for _, d := range p.Definitions {
		if d.Name == "" {
			errs = append(errs, errors.New("definition: name is required"))
		}
		if _, dup := defs[d.Name]; dup {
			errs = append(errs, fmt.Errorf("definition %s: listed twice", d.Name))
		}
		defs[d.Name] = d
		if d.HyperVGeneration != "V1" && d.HyperVGeneration != "V2" {
			errs = append(errs, fmt.Errorf("definition %s: hyperv generation %q, want V1 or V2", d.Name, d.HyperVGeneration))
		}
		if d.Architecture != "x64" && d.Architecture != "Arm64" {
			errs = append(errs, fmt.Errorf("definition %s: architecture %q, want x64 or Arm64", d.Name, d.Architecture))
		}
		if d.Architecture == "Arm64" && d.HyperVGeneration == "V1" {
			errs = append(errs, fmt.Errorf("definition %s: Arm64 needs hyperv generation V2", d.Name))
		}
		if d.SecurityType != "" && !contains(SecurityTypes, d.SecurityType) {
			errs = append(errs, fmt.Errorf("definition %s: security type %q: want one of %s", d.Name, d.SecurityType, strings.Join(SecurityTypes, ", ")))
		} else if d.SecurityType != "" && d.SecurityType != "Standard" && d.HyperVGeneration == "V1" {
			errs = append(errs, fmt.Errorf("definition %s: security type %s needs hyperv generation V2", d.Name, d.SecurityType))
		}
		if d.DiskControllerTypes != "" {
			if nvme, err := CheckDiskControllerTypes(d.DiskControllerTypes); err != nil {
				errs = append(errs, fmt.Errorf("definition %s: %w", d.Name, err))
			} else if nvme && d.HyperVGeneration == "V1" {
				errs = append(errs, fmt.Errorf("definition %s: disk controller NVMe needs hyperv generation V2 (give disk_controller_types = \"SCSI\", or publish V2 only)", d.Name))
			}
		}
		if other, dup := ids[d.Identifier]; dup {
			errs = append(errs, fmt.Errorf("definitions %s and %s: same identifier %s/%s/%s; it must be unique in the gallery", other, d.Name, d.Identifier.Publisher, d.Identifier.Offer, d.Identifier.SKU))
		}
		ids[d.Identifier] = d.Name
	}
	seen := map[[2]string]bool{}
	for _, v := range p.Versions {
		if _, ok := defs[v.Definition]; !ok {
			errs = append(errs, fmt.Errorf("version %s: definition %q is not in the plan", v.Name, v.Definition))
		}
		if err := CheckVersion(v.Name); err != nil {
			errs = append(errs, err)
		}
		if seen[[2]string{v.Definition, v.Name}] {
			errs = append(errs, fmt.Errorf("version %s of %s: listed twice", v.Name, v.Definition))
		}
		seen[[2]string{v.Definition, v.Name}] = true
		if v.Source.StorageAccountID == "" || v.Source.URI == "" {
			errs = append(errs, fmt.Errorf("version %s of %s: the source needs a storage account id and a blob URI", v.Name, v.Definition))
		}
		if v.StorageAccountType != "" && !contains(StorageAccountTypes, v.StorageAccountType) {
			errs = append(errs, fmt.Errorf("version %s: storage_account_type %q, want one of %s", v.Name, v.StorageAccountType, strings.Join(StorageAccountTypes, ", ")))
		}
		if v.Shallow {
			// Shallow replication keeps the image in the source region
			// with one replica (packer-plugin-azure: "When using shallow
			// replication the replica count can only be 1").
			rs := regionsOf(g, v)
			if len(rs) != 1 || rs[0].Replicas > 1 || normRegion(rs[0].Name) != normRegion(g.Location) {
				var got []string
				for _, r := range rs {
					got = append(got, fmt.Sprintf("%s (%d %s)", r.Name, max(r.Replicas, 1), plural(max(r.Replicas, 1), "replica")))
				}
				errs = append(errs, fmt.Errorf("version %s of %s: shallow replication: only the gallery's region %s with 1 replica; got %s", v.Name, v.Definition, g.Location, strings.Join(got, ", ")))
			}
		}
		for _, r := range v.Regions {
			if r.Name == "" {
				errs = append(errs, fmt.Errorf("version %s: target_region without a name", v.Name))
			}
			if r.Replicas < 1 || r.Replicas > 100 {
				errs = append(errs, fmt.Errorf("target_region %s: replicas %d, want 1 to 100", r.Name, r.Replicas))
			}
			if r.StorageAccountType != "" && !contains(StorageAccountTypes, r.StorageAccountType) {
				errs = append(errs, fmt.Errorf("target_region %s: storage_account_type %q, want one of %s", r.Name, r.StorageAccountType, strings.Join(StorageAccountTypes, ", ")))
			}
		}
	}
	return errors.Join(errs...)
}

func plural(n int32, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// DateVersion is AlmaLinux's scheme made collision-free:
// <major>.<minor>.<YYYYMMDD><NN> from the release version ("9.6", "10"),
// with NN one above the highest index already used that day among
// existing (parsed, not counted), starting at 01.
func DateVersion(release string, day time.Time, existing []string) (string, error) {
	parts := strings.Split(release, ".")
	if len(parts) > 2 || parts[0] == "" {
		return "", fmt.Errorf("release version %q: want <major> or <major>.<minor>", release)
	}
	major, err := strconv.ParseUint(parts[0], 10, 31)
	if err != nil {
		return "", fmt.Errorf("release version %q: major %q is not a number", release, parts[0])
	}
	var minor uint64
	if len(parts) == 2 {
		if minor, err = strconv.ParseUint(parts[1], 10, 31); err != nil {
			return "", fmt.Errorf("release version %q: minor %q is not a number", release, parts[1])
		}
	}
	date := day.UTC().Format("20060102")
	prefix := fmt.Sprintf("%d.%d.%s", major, minor, date)
	idx := 0
	for _, e := range existing {
		if len(e) == len(prefix)+2 && strings.HasPrefix(e, prefix) {
			if n, err := strconv.Atoi(e[len(prefix):]); err == nil && n > idx {
				idx = n
			}
		}
	}
	if idx >= 99 {
		return "", fmt.Errorf("version scheme: 99 versions %s.. exist already today", prefix)
	}
	v := fmt.Sprintf("%s%02d", prefix, idx+1)
	return v, CheckVersion(v)
}

// DefinitionSpec names the definition of one generation.
type DefinitionSpec struct {
	Name       string
	Identifier Identifier
}

// Publish is what a publish asks for; Build turns it into a Plan.
type Publish struct {
	Gallery Gallery
	Arch    string   // x86_64 or aarch64
	Asked   []string // Hyper-V generations asked for (default V2)
	// Definitions by generation (V1, V2).
	Definitions       map[string]DefinitionSpec
	Description, EULA string
	// Features of new definitions.
	SecurityType string // applied to V2 definitions only
	// DiskControllerTypes of new definitions; empty: DefaultDiskControllerTypes
	// on V2, none on V1. NVMe on V1 is an error (Validate).
	DiskControllerTypes   string
	AcceleratedNetworking bool

	Version            string
	Source             Source
	Regions            []Region
	StorageAccountType string
	Shallow            bool
	ExcludeFromLatest  bool
	EndOfLifeDate      *time.Time
}

// Build plans one definition and one version per generation: x86_64 into
// each generation asked (V1 and V2 from the same blob), aarch64 into V2
// only. Each generation needs a definition name.
func Build(r Publish) (Plan, error) {
	arch, err := AzureArch(r.Arch)
	if err != nil {
		return Plan{}, err
	}
	gens, err := Generations(r.Arch, r.Asked)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Gallery: r.Gallery}
	for _, g := range gens {
		spec, ok := r.Definitions[g]
		if !ok || spec.Name == "" {
			return Plan{}, fmt.Errorf("no image definition name for %s %s: give one (image_name) for each generation published", r.Arch, g)
		}
		d := Definition{Name: spec.Name, HyperVGeneration: g, Architecture: arch, Identifier: spec.Identifier,
			Description: r.Description, EULA: r.EULA, DiskControllerTypes: r.DiskControllerTypes, AcceleratedNetworking: r.AcceleratedNetworking}
		if g == "V2" {
			d.SecurityType = r.SecurityType
			if d.DiskControllerTypes == "" {
				d.DiskControllerTypes = DefaultDiskControllerTypes
			}
		}
		p.Definitions = append(p.Definitions, d)
		p.Versions = append(p.Versions, Version{Definition: spec.Name, Name: r.Version, Source: r.Source, Regions: r.Regions,
			StorageAccountType: r.StorageAccountType, Shallow: r.Shallow, ExcludeFromLatest: r.ExcludeFromLatest, EndOfLifeDate: r.EndOfLifeDate})
	}
	return p, p.Validate()
}
