package release

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Manifest is the machine-readable record of a release: every variant's
// latest revision, as its state document holds it.
type Manifest struct {
	Release  string    `json:"release"`
	Store    string    `json:"store"`
	Created  time.Time `json:"created"`
	Variants []*Doc    `json:"variants"`
}

// JSON encodes the manifest.
func (m *Manifest) JSON() []byte {
	b, _ := json.MarshalIndent(m, "", "  ") // plain data always marshals
	return append(b, '\n')
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// Markdown is the release notes: a table of the variants and, per variant,
// what was published where.
func (m *Manifest) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Release %s\n\n", m.Release)
	fmt.Fprintf(&b, "%d variants, state in `%s`, made %s UTC.\n\n", len(m.Variants), m.Store, m.Created.UTC().Format("2006-01-02 15:04"))
	b.WriteString("| Variant | Name | Built | Published | Released |\n|---|---|---|---|---|\n")
	for _, d := range m.Variants {
		pub, rel := (*time.Time)(nil), (*time.Time)(nil)
		for _, t := range d.Targets {
			if t.Published != nil && (pub == nil || t.Published.After(*pub)) {
				pub = t.Published
			}
			if t.Released != nil && (rel == nil || t.Released.After(*rel)) {
				rel = t.Released
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", d.Key, d.Name, stamp(d.Built), stamp(pub), stamp(rel))
	}
	for _, d := range m.Variants {
		fmt.Fprintf(&b, "\n## %s (r%d)\n\n", d.Name, d.Revision)
		for _, f := range d.Files {
			fmt.Fprintf(&b, "- %s `%s` sha256 `%s`\n", f.Role, f.Name, f.SHA256)
		}
		for _, t := range d.Targets {
			if t.Blob != nil {
				fmt.Fprintf(&b, "- %s: blob %s (Content-MD5 `%s`)\n", t.Name, t.Blob.URL, t.Blob.MD5)
			}
			for _, v := range t.Versions {
				latest := "in latest"
				if v.ExcludeFromLatest {
					latest = "excluded from latest"
				}
				fmt.Fprintf(&b, "- %s: gallery version `%s` (%s, %s; regions %s)\n", t.Name, v.ID, v.Generation, latest, strings.Join(v.Regions, ", "))
			}
			if o := t.OCI; o != nil {
				for _, mf := range o.Manifests {
					fmt.Fprintf(&b, "- %s: manifest %s@%s (%s/%s)\n", t.Name, o.Repository, mf.Digest, mf.Platform, mf.Arch)
				}
				for _, ix := range o.Indexes {
					fmt.Fprintf(&b, "- %s: index %s:%s@%s\n", t.Name, o.Repository, ix.Tag, ix.Digest)
				}
				if len(o.MovingTags) > 0 {
					fmt.Fprintf(&b, "- %s: moving tags %s\n", t.Name, strings.Join(o.MovingTags, ", "))
				}
			}
		}
	}
	return b.String()
}

// Incomplete lists, per variant, what the stage still lacks in the
// documents: the expected keys (all documents' when empty) that have no
// document, no build, or a publish target not published / not released.
// targets gives each key's publish target names (from the matrix); a key
// missing from it is checked against the targets its document knows.
func Incomplete(docs []*Doc, expected []string, targets map[string][]string, stage string) []string {
	byKey := map[string]*Doc{}
	for _, d := range docs {
		byKey[d.Key] = d
	}
	if len(expected) == 0 {
		for _, d := range docs {
			expected = append(expected, d.Key)
		}
	}
	var out []string
	for _, k := range expected {
		d := byKey[k]
		if d == nil {
			out = append(out, k+": no state document")
			continue
		}
		names, ok := targets[k]
		if !ok {
			for _, t := range d.Targets {
				names = append(names, t.Name)
			}
		}
		pending, err := Pending(d, stage, names)
		if err != nil {
			out = append(out, k+": "+err.Error())
			continue
		}
		if len(pending) > 0 {
			out = append(out, fmt.Sprintf("%s (r%d): %s pending", k, d.Revision, strings.Join(pending, ", ")))
		}
	}
	return out
}
