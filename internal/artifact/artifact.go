// Package artifact is the one artifact model shared by every component of the
// plugin: files by role, and the whole variant (internal/variant: arch,
// platform, Hyper-V generation, firmware, publish targets, delivery) they
// belong to. Post-processors ask for roles, not positions, so
// they chain in any order and accept artifacts of other builders too.
//
// The Artifact type satisfies Packer's packersdk.Artifact interface by shape,
// without importing Packer; the Packer glue wraps it where Packer-only state
// (HCP Packer metadata) is needed.
package artifact

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// Roles a file can play.
const (
	RoleDisk     = "disk"      // a disk image (raw unless Format says otherwise)
	RoleVHD      = "vhd"       // a fixed VHD ready for Azure
	RoleKernel   = "kernel"    // a kernel for direct (baremetal/PXE) boot
	RoleInitrd   = "initrd"    // the matching initramfs
	RoleRootfs   = "rootfs"    // a root filesystem image
	RoleCmdline  = "cmdline"   // the kernel command line for direct boot (one line of text)
	RolePackages = "packages"  // the list of packages inside the image
	RoleSBOM     = "sbom"      // the image's software bill of materials (SPDX or CycloneDX JSON)
	RoleSig      = "signature" // a detached signature (cosign sign-blob's) of another file
	RoleLog      = "log"       // a build log
)

// StateKey is the Artifact.State key under which the whole model travels,
// as a JSON string, across Packer's RPC boundary between plugin processes.
const StateKey = "osimage.artifact"

// File is one output with its role.
type File struct {
	Path   string `json:"path"`
	Role   string `json:"role"`
	Format string `json:"format,omitempty"` // raw, vpc, qcow2, vmdk, vhdx, ext4, ...
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	MD5    string `json:"md5,omitempty"`
}

// Artifact is what a component hands to the next one.
type Artifact struct {
	// Builder is the id reported by BuilderId.
	Builder string `json:"builder"`
	// ID is reported by Id; defaults to the first file's path.
	ID string `json:"id,omitempty"`
	// Variant is the build of the matrix the files belong to, whole: a
	// publisher finds its destination among Variant.Targets. Arch is always
	// x86_64 or aarch64; variant.OCIArch and variant.AzureArch spell it for
	// the clouds.
	Variant variant.Variant `json:"variant"`
	// Outputs are the files by role.
	Outputs []File `json:"files"`
	// Extra holds string state other components or users may read with State.
	Extra map[string]string `json:"extra,omitempty"`
	// Generated is the data exposed as State("generated_data").
	Generated map[string]string `json:"generated,omitempty"`
	// Owned lists the paths (files or directories) this component created;
	// Destroy removes exactly these and nothing else.
	Owned []string `json:"-"`
}

// ByRole returns the files with the given role, in order.
func (a *Artifact) ByRole(role string) []File {
	var out []File
	for _, f := range a.Outputs {
		if f.Role == role {
			out = append(out, f)
		}
	}
	return out
}

// One returns the single file with the given role, or an error naming what
// the artifact holds instead.
func (a *Artifact) One(role string) (File, error) {
	fs := a.ByRole(role)
	switch len(fs) {
	case 1:
		return fs[0], nil
	case 0:
		return File{}, fmt.Errorf("artifact from %q has no %s file; it holds %s", a.Builder, role, a.describeFiles())
	default:
		return File{}, fmt.Errorf("artifact from %q has %d %s files (%s); expected exactly one", a.Builder, len(fs), role, a.describeFiles())
	}
}

func (a *Artifact) describeFiles() string {
	if len(a.Outputs) == 0 {
		return "no files"
	}
	parts := make([]string, len(a.Outputs))
	for i, f := range a.Outputs {
		parts[i] = fmt.Sprintf("%s (%s)", f.Path, f.Role)
	}
	return strings.Join(parts, ", ")
}

// BuilderId implements packersdk.Artifact.
func (a *Artifact) BuilderId() string { return a.Builder }

// Files implements packersdk.Artifact: every file path.
func (a *Artifact) Files() []string {
	out := make([]string, len(a.Outputs))
	for i, f := range a.Outputs {
		out[i] = f.Path
	}
	return out
}

// Id implements packersdk.Artifact.
func (a *Artifact) Id() string {
	if a.ID != "" {
		return a.ID
	}
	if len(a.Outputs) > 0 {
		return a.Outputs[0].Path
	}
	return ""
}

// String implements packersdk.Artifact: the variant, where it is
// published, and the files by role.
func (a *Artifact) String() string {
	var b strings.Builder
	v := &a.Variant
	if v.Key != "" {
		fmt.Fprintf(&b, "Variant %s", v.Key)
		var parts []string
		for _, s := range []string{v.Arch, v.Platform, v.HyperVGeneration, v.Firmware, v.ReleaseVer} {
			if s != "" {
				parts = append(parts, s)
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
		}
		for _, t := range v.Targets {
			fmt.Fprintf(&b, "\n  target   %s: %s %s, image %s", t.Name, t.InterfaceType, t.ResourceURN, t.ImageName)
		}
		if d := v.Delivery.String(); d != "{}" {
			fmt.Fprintf(&b, "\n  delivery %s", d)
		}
	} else {
		b.WriteString("Files")
	}
	for _, f := range a.Outputs {
		fmt.Fprintf(&b, "\n  %-8s %s", f.Role, f.Path)
		if f.SHA256 != "" {
			fmt.Fprintf(&b, " (sha256 %s)", f.SHA256)
		}
	}
	return b.String()
}

// State implements packersdk.Artifact. It returns only strings and
// map[string]string so values survive Packer's RPC encoding.
func (a *Artifact) State(name string) interface{} {
	switch name {
	case StateKey:
		b, err := json.Marshal(a)
		if err != nil {
			return nil
		}
		return string(b)
	case "generated_data":
		if a.Generated == nil {
			return nil
		}
		m := make(map[string]interface{}, len(a.Generated))
		for k, v := range a.Generated {
			m[k] = v
		}
		return m
	}
	if v, ok := a.Extra[name]; ok {
		return v
	}
	return nil
}

// Destroy implements packersdk.Artifact: it removes what this component
// created, in reverse order of creation, and nothing else.
func (a *Artifact) Destroy() error {
	var errs []error
	for i := len(a.Owned) - 1; i >= 0; i-- {
		if err := os.RemoveAll(a.Owned[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Clone returns a deep copy without ownership: the copy destroys nothing.
func (a *Artifact) Clone() *Artifact {
	c := *a
	c.Outputs = append([]File(nil), a.Outputs...)
	c.Extra = cloneMap(a.Extra)
	c.Generated = cloneMap(a.Generated)
	c.Owned = nil
	c.Variant = a.Variant.Clone()
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// SortedExtraKeys is a helper for stable output.
func (a *Artifact) SortedExtraKeys() []string {
	keys := make([]string, 0, len(a.Extra))
	for k := range a.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
