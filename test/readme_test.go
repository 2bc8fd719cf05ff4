package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/test/acc"
)

// README's relative links lead somewhere, and its component docs links go
// to the rendered pages: docs/*.mdx show only @include lines on GitHub.
func TestReadmeLinksResolveAndComponentDocsAreTheRenderedPages(t *testing.T) {
	root := acc.Setup(t).Root
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	links := regexp.MustCompile(`\]\(([^)#]+)(#[^)]*)?\)`).FindAllStringSubmatch(string(b), -1)
	if len(links) < 10 {
		t.Fatalf("only %d links found in README.md", len(links))
	}
	for _, l := range links {
		target := l[1]
		if strings.Contains(target, "://") {
			continue
		}
		if strings.HasSuffix(target, ".mdx") {
			t.Errorf("README links %s: GitHub shows its @include lines; link the rendered page in .web-docs/", target)
		}
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(target))); err != nil {
			t.Errorf("README links %s: %v", target, err)
		}
	}
}
