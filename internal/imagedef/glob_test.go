package imagedef

import (
	"path"
	"testing"
)

func TestMatchSegmentAgreesWithPathMatch(t *testing.T) {
	patterns := []string{"", "*", "*.toml", "*.image.toml", "a*", "img*", "abc", "a?c", "[ab]*", "*a*", "*[", "x", ".*", "*.", "a]", "a-b", `a\*`, `*\.toml`, "é*", "*é"}
	names := []string{"a", "abc", "x.toml", "img0000.image.toml", ".toml", "toml", "a]", "a-b", "a*", "é", "éa", "aé", "\xff", "a\xff.toml", "imgimg", "*", ".", "x.tomlx"}
	for _, p := range patterns {
		for _, n := range names {
			want, _ := path.Match(p, n)
			if got := matchSegment(p, n); got != want {
				t.Errorf("matchSegment(%q, %q) = %v, path.Match says %v", p, n, got, want)
			}
		}
	}
}
