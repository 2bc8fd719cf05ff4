// Package variant is the one vocabulary of a build variant: the Variant the
// osimage-matrix datasource expands, that osimage-disk takes whole, that the
// artifact carries and that every publisher reads its destination from; and
// the one table of spellings (spellings.go).
//
// Design: the variant travels as JSON (a template writes
// `variant = jsonencode(source.value)`); Parse is the one reader, shared by
// every component, and accepts both shapes a variant has in the wild: the
// datasource's HCL output (delivery as a JSON string, capabilities as
// "true"/"false") and the CI matrix's JSON (delivery as an object,
// capabilities as booleans).
package variant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Variant is one build: an image with one value for every dimension. The
// JSON names are the datasource's output names.
type Variant struct {
	// Key is unique and usable as a Packer source name.
	Key   string `json:"key"`
	Image string `json:"image"`
	// ImageName is the name the image is published under, when one
	// component was told it (osimage-disk's image_name); the matrix leaves it
	// empty and gives each target's name in Targets.
	ImageName        string   `json:"image_name,omitempty"`
	Description      string   `json:"description"`
	Distro           string   `json:"distro"`
	DistroVersion    string   `json:"distro_version"`
	ReleaseVer       string   `json:"release_ver"`
	Arch             string   `json:"arch"`       // x86_64 or aarch64 (KIWI, uname -m)
	OCIArch          string   `json:"oci_arch"`   // amd64 or arm64
	AzureArch        string   `json:"azure_arch"` // x64 or Arm64
	Platform         string   `json:"platform"`   // virtualization or baremetal
	HyperVGeneration string   `json:"hyperv_generation"`
	Firmware         string   `json:"firmware"`
	DefinitionType   string   `json:"definition_type"`
	DefinitionPath   string   `json:"definition_path"` // absolute
	Profiles         []string `json:"profiles"`
	// Dimensions holds every dimension's value by name, built-in and user.
	Dimensions      map[string]string `json:"dimensions"`
	Capabilities    Capabilities      `json:"capabilities"`
	PublishLabels   []string          `json:"publish_labels"`
	PublishChannels []string          `json:"publish_channels"`
	Targets         []Target          `json:"targets"`
	// Unresolved lists the settings given as "*" (to be filled in by a
	// publish step), as sorted dotted paths such as
	// delivery.shared_gallery.image_version or targets.NAME.resource_urn.
	Unresolved []string `json:"unresolved"`
	// Delivery holds the delivery.* tables as compact JSON with sorted keys
	// ("{}" when there are none); values given as "*" are null. Read it with
	// DeliveryValue. Treat it as read-only: variants may share it.
	Delivery Delivery `json:"delivery"`
	// The release state (osimage-matrix with `state`), for the components
	// to prune their work and record what they made: the store (a
	// directory or a blob container URL, never with a secret), the
	// revision this run works on, Alpine's image name with it, the stage
	// asked (build, publish or release) and the steps of that stage still
	// pending for this variant. Without a store, Pending lists every step
	// of the stage.
	State       string   `json:"state,omitempty"`
	Revision    int      `json:"revision"`
	ReleaseName string   `json:"release_name,omitempty"`
	Stage       string   `json:"stage,omitempty"`
	Pending     []string `json:"pending,omitempty"`
}

// Target is a publish target this variant goes to.
type Target struct {
	Name          string `json:"name"`
	InterfaceType string `json:"interface_type"` // azure-compute-gallery, oci-registry, ...
	Backend       string `json:"backend"`
	ResourceURN   string `json:"resource_urn"` // a gallery resource id, a registry host, ...
	ImageName     string `json:"image_name"`   // the target's image for this variant's arch
}

// Interface types of publish targets the plugin publishes to.
const (
	InterfaceAzureComputeGallery = "azure-compute-gallery"
	InterfaceOCIRegistry         = "oci-registry"
)

// TargetsOf returns the targets with the given interface type, in order.
func (v *Variant) TargetsOf(interfaceType string) []Target {
	var out []Target
	for _, t := range v.Targets {
		if t.InterfaceType == interfaceType {
			out = append(out, t)
		}
	}
	return out
}

// PickTarget returns the target of the interface type a publisher writes
// to: the one called name, or the only one. It returns nil and no error when
// the variant has none (the publisher then needs explicit settings), and an
// error naming the candidates when name matches none or when several match
// and no name is given.
func (v *Variant) PickTarget(interfaceType, name string) (*Target, error) {
	ts := v.TargetsOf(interfaceType)
	var names []string
	for i, t := range ts {
		names = append(names, t.Name)
		if name != "" && t.Name == name {
			return &ts[i], nil
		}
	}
	switch {
	case name != "":
		if len(names) == 0 {
			names = []string{"none"}
		}
		return nil, fmt.Errorf("target = %q: variant %s has no such %s target (it has %s)", name, v.Key, interfaceType, strings.Join(names, ", "))
	case len(ts) > 1:
		return nil, fmt.Errorf("variant %s has %d %s targets (%s): choose one with target", v.Key, len(ts), interfaceType, strings.Join(names, ", "))
	case len(ts) == 1:
		return &ts[0], nil
	}
	return nil, nil
}

// Delivery is a JSON object held as its compact text. It marshals as the
// object and unmarshals from an object, from a string holding one (the
// datasource's HCL output) or from null/"" (no tables).
type Delivery json.RawMessage

// String returns the compact JSON text, "{}" when empty.
func (d Delivery) String() string {
	if len(d) == 0 {
		return "{}"
	}
	return string(d)
}

// MarshalJSON writes the object ({} when empty).
func (d Delivery) MarshalJSON() ([]byte, error) {
	if len(d) == 0 {
		return []byte("{}"), nil
	}
	return d, nil
}

// UnmarshalJSON accepts an object, a string holding an object, "" or null.
func (d *Delivery) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(strings.TrimSpace(s))
	}
	if len(b) == 0 || string(b) == "null" {
		*d = nil
		return nil
	}
	obj, err := decodeObject(b)
	if err != nil {
		return fmt.Errorf("delivery: want a JSON object (the datasource's delivery): %v", err)
	}
	c, err := json.Marshal(obj) // compact, sorted keys, numbers as written
	if err != nil {
		return err
	}
	*d = c
	return nil
}

// DeliveryValue returns the value at a dotted path of the delivery tables
// (for example "shared_gallery.publisher"), or nil when absent or "*".
func (v *Variant) DeliveryValue(path string) any {
	if len(v.Delivery) == 0 {
		return nil
	}
	obj, err := decodeObject(v.Delivery)
	if err != nil {
		return nil
	}
	var cur any = obj
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// decodeObject decodes a JSON object keeping numbers exact (json.Number).
func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errors.New("null is not an object")
	}
	return obj, nil
}

// DeliveryString is DeliveryValue for a string value ("" when absent or not
// a string).
func (v *Variant) DeliveryString(path string) string {
	s, _ := v.DeliveryValue(path).(string)
	return s
}

// Capabilities are the image's capabilities (machine-bootable, container,
// ...). They unmarshal from booleans or from "true"/"false" strings (the
// datasource's HCL output).
type Capabilities map[string]bool

// UnmarshalJSON accepts {"name": true} and {"name": "true"}.
func (c *Capabilities) UnmarshalJSON(b []byte) error {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("capabilities: want an object of booleans: %w", err)
	}
	if raw == nil {
		*c = nil
		return nil
	}
	out := make(Capabilities, len(raw))
	for k, v := range raw {
		switch t := v.(type) {
		case bool:
			out[k] = t
		case string:
			bv, err := strconv.ParseBool(t)
			if err != nil {
				return fmt.Errorf("capabilities.%s = %q: want true or false", k, t)
			}
			out[k] = bv
		default:
			return fmt.Errorf("capabilities.%s: want true or false, got %v", k, v)
		}
	}
	*c = out
	return nil
}

// ErrNotVariant is wrapped by Parse's errors.
var ErrNotVariant = errors.New("not a variant")

// Parse reads the variant a template passes as `field = jsonencode(...)`:
// one element of the osimage-matrix datasource's `variants`, or of its
// `matrix_json` include list. It names the field in every error, normalises
// arch, platform, generation and firmware through the one table (filling in
// oci_arch and azure_arch), and rejects a value without a key.
func Parse(field, text string) (*Variant, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, fmt.Errorf("%s is empty: %w; want jsonencode(<one element of data.osimage-matrix.NAME.variants>)", field, ErrNotVariant)
	}
	if text[0] != '{' {
		return nil, fmt.Errorf("%s: %w: want a JSON object, jsonencode(<one element of data.osimage-matrix.NAME.variants>), got %s", field, ErrNotVariant, excerpt(text))
	}
	var v Variant
	dec := json.NewDecoder(strings.NewReader(text))
	if err := dec.Decode(&v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s: malformed JSON at byte %d: %v", field, se.Offset, err)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%s: malformed JSON: it ends before the object is closed", field)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s.%s: want %s, got a JSON %s", field, te.Field, jsonKind(te.Type), te.Value)
		}
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: malformed JSON: more than one value", field)
	}
	if strings.TrimSpace(v.Key) == "" {
		return nil, fmt.Errorf("%s has no \"key\": %w; want jsonencode(<one element of data.osimage-matrix.NAME.variants>)", field, ErrNotVariant)
	}
	if err := v.Normalize(); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return &v, nil
}

// Normalize puts arch, platform, generation and firmware in canonical
// spellings (defaults and derived firmware as Normalize does) and sets the
// OCI and Azure arch names to match.
func (v *Variant) Normalize() error {
	b, errs := Normalize(Builtins{v.Arch, v.Platform, v.HyperVGeneration, v.Firmware})
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	v.Arch, v.Platform, v.HyperVGeneration, v.Firmware = b.Arch, b.Platform, b.HyperVGeneration, b.Firmware
	v.OCIArch, v.AzureArch = OCIArch(v.Arch), AzureArch(v.Arch)
	return nil
}

// jsonKind names a Go type the way a template author thinks of JSON.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

func excerpt(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

// Clone returns a deep copy.
func (v Variant) Clone() Variant {
	c := v
	c.Profiles = slices.Clone(v.Profiles)
	c.Dimensions = maps.Clone(v.Dimensions)
	c.Capabilities = maps.Clone(v.Capabilities)
	c.PublishLabels = slices.Clone(v.PublishLabels)
	c.PublishChannels = slices.Clone(v.PublishChannels)
	c.Targets = slices.Clone(v.Targets)
	c.Unresolved = slices.Clone(v.Unresolved)
	c.Delivery = Delivery(slices.Clone([]byte(v.Delivery)))
	return c
}

// Steps of a release whose pending state components ask with StepPending
// (internal/release names them too).
const (
	StepBuild   = "build"
	StepPublish = "publish"
	StepRelease = "release"
)

// StepPending reports whether a component should do its part of step for
// this variant: always without a release state (the variant runs
// everything), else when the matrix listed the step as pending.
func (v *Variant) StepPending(step string) bool {
	return v.State == "" || slices.Contains(v.Pending, step)
}

// ReleaseVersion is the version a release of this variant is known by: its
// release_ver, else its distro_version.
func (v *Variant) ReleaseVersion() string {
	if v.ReleaseVer != "" {
		return v.ReleaseVer
	}
	return v.DistroVersion
}

// ParseList reads a JSON array of variants (jsonencode of the matrix's
// `variants`), or a CI matrix ({"include": [...]}), each as Parse does.
func ParseList(field, text string) ([]Variant, error) {
	text = strings.TrimSpace(text)
	var raw []json.RawMessage
	if strings.HasPrefix(text, "{") {
		var m struct {
			Include []json.RawMessage `json:"include"`
		}
		if err := json.Unmarshal([]byte(text), &m); err != nil {
			return nil, fmt.Errorf("%s: %v", field, err)
		}
		raw = m.Include
	} else if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("%s: want a JSON array of variants, jsonencode(data.osimage-matrix.NAME.variants): %v", field, err)
	}
	out := make([]Variant, 0, len(raw))
	for i, r := range raw {
		v, err := Parse(fmt.Sprintf("%s[%d]", field, i), string(r))
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, nil
}
