package artifact

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// Packer is the part of packersdk.Artifact that From reads; any artifact
// arriving over Packer's RPC satisfies it.
type Packer interface {
	BuilderId() string
	Files() []string
	State(name string) interface{}
}

// Builder ids of other plugins whose artifacts From understands.
const (
	FileBuilderID = "packer.file"
	QemuBuilderID = "transcend.qemu"
)

// diskExts maps file extensions to the role and format they imply.
var diskExts = map[string][2]string{
	".raw":      {RoleDisk, "raw"},
	".img":      {RoleDisk, "raw"},
	".qcow2":    {RoleDisk, "qcow2"},
	".vmdk":     {RoleDisk, "vmdk"},
	".vhdx":     {RoleDisk, "vhdx"},
	".vhd":      {RoleVHD, "vpc"},
	".vhdfixed": {RoleVHD, "vpc"},
}

// From reads any Packer artifact into the model. This plugin's own
// artifacts carry the model in State(StateKey); for others the roles are
// inferred: the qemu builder's diskPaths, then file extensions, then "the
// only file is the disk". Formats that cannot be told from the name are
// left empty, for the consumer to sniff (see package diskfmt).
func From(in Packer) (*Artifact, error) {
	if in == nil {
		return nil, fmt.Errorf("no input artifact")
	}
	if s, ok := in.State(StateKey).(string); ok && s != "" {
		var a Artifact
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			return nil, fmt.Errorf("artifact from %q: decode %s state: %w", in.BuilderId(), StateKey, err)
		}
		return &a, nil
	}
	a := &Artifact{Builder: in.BuilderId()}
	files := in.Files()
	disks := stringList(in.State("diskPaths"))
	if len(disks) > 0 {
		format, _ := in.State("diskType").(string)
		for _, p := range disks {
			a.Outputs = append(a.Outputs, File{Path: p, Role: RoleDisk, Format: format})
		}
		for _, p := range files {
			if !contains(disks, p) {
				a.Outputs = append(a.Outputs, File{Path: p, Role: "other"})
			}
		}
		return a, nil
	}
	for _, p := range files {
		if rf, ok := diskExts[strings.ToLower(filepath.Ext(p))]; ok {
			a.Outputs = append(a.Outputs, File{Path: p, Role: rf[0], Format: rf[1]})
		} else {
			a.Outputs = append(a.Outputs, File{Path: p, Role: "other"})
		}
	}
	if len(files) == 1 && a.Outputs[0].Role == "other" {
		a.Outputs[0].Role = RoleDisk
	}
	return a, nil
}

// stringList accepts the shapes a []string takes after Packer's RPC
// encodings: []string, []interface{} of strings, or one string.
func stringList(v interface{}) []string {
	switch t := v.(type) {
	case []string:
		return t
	case []interface{}:
		var out []string
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		if t != "" {
			return []string{t}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
