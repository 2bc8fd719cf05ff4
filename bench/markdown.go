package main

import (
	"fmt"
	"os"
	"strings"
)

const header = `# Benchmarks

Produced by ` + "`make bench`" + ` (` + "`go build -o .bench/osimage-bench ./bench && .bench/osimage-bench`" + `).
Each section is rewritten by its own suite; run one with ` + "`.bench/osimage-bench SUITE`" + `.
Every contender runs in its own process, interleaved with the others; times are medians,
memory is the peak resident set size of the process.
`

// updateSection replaces (or appends) the section of one suite, marked by
// HTML comments, keeping the other suites' results.
func updateSection(path, name, title, body string) error {
	begin := fmt.Sprintf("<!-- bench:%s:begin -->", name)
	end := fmt.Sprintf("<!-- bench:%s:end -->", name)
	section := fmt.Sprintf("%s\n## %s\n\n%s\n%s", begin, title, strings.TrimSpace(body), end)
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	if s == "" {
		s = header
	}
	if i := strings.Index(s, begin); i >= 0 {
		if j := strings.Index(s, end); j > i {
			s = s[:i] + section + s[j+len(end):]
			return os.WriteFile(path, []byte(s), 0o644)
		}
	}
	s = strings.TrimRight(s, "\n") + "\n\n" + section + "\n"
	return os.WriteFile(path, []byte(s), 0o644)
}
