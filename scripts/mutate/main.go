// Command mutate runs gremlins (mutation testing) on the domain packages
// and writes their test efficacy and mutator coverage into TESTING.md, one
// section per package, the way bench/ writes BENCHMARKS.md: a run rewrites
// the sections of the packages it ran and keeps the others and everything
// written by hand (the equivalent mutants and why).
//
// Usage (scripts/mutate.sh installs gremlins and calls this):
//
//	go run ./scripts/mutate [-workers 2] [-out TESTING.md] [PKG...]
//
// PKG is a directory under internal/ (sparse, internal/vhd, ./internal/vhd).
// Without PKG it runs every domain package: each directory internal/* with
// Go code, except the ones in excluded.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// excluded are the internal packages that are not domain code: test
// helpers and the thin Packer UI glue. Every other internal/* package is
// mutation tested.
var excluded = map[string]string{
	"testsvc":    "starts Azurite and the registry for other packages' tests",
	"testutil":   "helpers for tests",
	"packerutil": "Packer UI glue (progress bars), no domain logic",
}

func main() {
	workers := flag.Int("workers", 2, "gremlins workers (use 1 on a shared machine)")
	out := flag.String("out", "TESTING.md", "file to update")
	gremlins := flag.String("gremlins", "gremlins", "gremlins binary")
	flag.Parse()
	pkgs, err := packages(flag.Args())
	if err != nil {
		fail(err)
	}
	for _, p := range pkgs {
		sec, err := run(*gremlins, p, *workers)
		if err != nil {
			fail(err)
		}
		old, err := os.ReadFile(*out)
		if err != nil && !os.IsNotExist(err) {
			fail(err)
		}
		doc := update(string(old), p, sec)
		if err := os.WriteFile(*out+".tmp", []byte(doc), 0o644); err != nil {
			fail(err)
		}
		if err := os.Rename(*out+".tmp", *out); err != nil {
			fail(err)
		}
		fmt.Fprintf(os.Stderr, "mutate: %s written to %s\n", p, *out)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mutate:", err)
	os.Exit(1)
}

// packages turns the arguments into package names under internal/, or
// lists every domain package.
func packages(args []string) ([]string, error) {
	if len(args) == 0 {
		ents, err := os.ReadDir("internal")
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() && excluded[e.Name()] == "" && hasGoCode(filepath.Join("internal", e.Name())) {
				args = append(args, e.Name())
			}
		}
		return args, nil
	}
	var out []string
	for _, a := range args {
		p := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSuffix(a, "/"), "./"), "internal/")
		if !hasGoCode(filepath.Join("internal", p)) {
			return nil, fmt.Errorf("%s: no Go package internal/%s (run from the repository root)", a, p)
		}
		out = append(out, p)
	}
	return out, nil
}

func hasGoCode(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			return true
		}
	}
	return false
}

// result is gremlins' JSON output, the parts used here.
type result struct {
	Files []struct {
		Name      string `json:"file_name"`
		Mutations []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
			Line   int    `json:"line"`
			Column int    `json:"column"`
		} `json:"mutations"`
	} `json:"files"`
	Elapsed float64 `json:"elapsed_time"`
}

// figures counts a result by status.
type figures struct {
	killed, lived, timedOut, notCovered, notViable int
	survivors, uncovered                           []string
}

func count(r result) figures {
	var f figures
	for _, file := range r.Files {
		for _, m := range file.Mutations {
			where := fmt.Sprintf("%s:%d:%d %s", filepath.Base(file.Name), m.Line, m.Column, m.Type)
			switch m.Status {
			case "KILLED":
				f.killed++
			case "LIVED":
				f.lived++
				f.survivors = append(f.survivors, where)
			case "TIMED OUT":
				f.timedOut++
			case "NOT COVERED":
				f.notCovered++
				f.uncovered = append(f.uncovered, where)
			case "NOT VIABLE":
				f.notViable++
			}
		}
	}
	sortPositions(f.survivors)
	sortPositions(f.uncovered)
	return f
}

// sortPositions sorts "file:line:col TYPE" by file, then line and column
// as numbers.
func sortPositions(ps []string) {
	key := func(p string) (string, int, int, string) {
		pos, typ, _ := strings.Cut(p, " ")
		parts := strings.Split(pos, ":")
		if len(parts) != 3 {
			return p, 0, 0, ""
		}
		l, _ := strconv.Atoi(parts[1])
		c, _ := strconv.Atoi(parts[2])
		return parts[0], l, c, typ
	}
	sort.Slice(ps, func(i, j int) bool {
		fi, li, ci, ti := key(ps[i])
		fj, lj, cj, tj := key(ps[j])
		if fi != fj {
			return fi < fj
		}
		if li != lj {
			return li < lj
		}
		if ci != cj {
			return ci < cj
		}
		return ti < tj
	})
}

// efficacy and coverage as gremlins defines them: killed over killed plus
// lived; killed plus lived over those plus not covered.
func (f figures) efficacy() float64 { return pct(f.killed, f.killed+f.lived) }
func (f figures) coverage() float64 {
	return pct(f.killed+f.lived, f.killed+f.lived+f.notCovered)
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b) * 100
}

// otherOS matches the files built only for other systems (by the
// project's naming): no test here can reach their mutants.
const otherOS = `_(windows|darwin|other)\.go$`

func run(gremlins, pkg string, workers int) (string, error) {
	tmp, err := os.MkdirTemp("", "mutate-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	js := filepath.Join(tmp, "result.json")
	args := []string{"unleash", "--workers", fmt.Sprint(workers), "--timeout-coefficient", "3", "-E", otherOS, "-o", js, "./internal/" + pkg}
	fmt.Fprintf(os.Stderr, "mutate: %s %s\n", gremlins, strings.Join(args, " "))
	cmd := exec.Command(gremlins, args...)
	// Under OSIMAGE_REQUIRE_TOOLS=1 a missing tool fails the tests instead
	// of skipping them, which would leave mutants alive for no reason.
	// gremlins runs each mutant's tests in a copy of the module, and the
	// tests look for .tools next to their own source: in a copy without it
	// (gremlins skips symlinks) every test that needs the registry, crane
	// or Azurite would fail and "kill" every mutant. So the repository's
	// tools also go on PATH, where the tests look next.
	root, err := os.Getwd()
	if err != nil {
		return "", err
	}
	path := strings.Join([]string{filepath.Join(root, ".tools", "bin"), filepath.Join(root, ".tools", "azurite", "node_modules", ".bin"), os.Getenv("PATH")}, string(os.PathListSeparator))
	cmd.Env = append(os.Environ(), "OSIMAGE_REQUIRE_TOOLS=1", "PATH="+path)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(os.Stderr, &log), io.MultiWriter(os.Stderr, &log)
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("gremlins on internal/%s: %w", pkg, err)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		return "", fmt.Errorf("gremlins on internal/%s wrote no result: %w\n%s", pkg, err, log.Bytes())
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("gremlins result of internal/%s: %w", pkg, err)
	}
	return section(pkg, count(r), workers, time.Since(t0), time.Now().UTC()), nil
}

// section renders one package's figures, with its summary row in a
// comment for the table at the top.
func section(pkg string, f figures, workers int, took time.Duration, now time.Time) string {
	var b strings.Builder
	row := fmt.Sprintf("| internal/%s | %.1f %% | %.1f %% | %d | %d | %d | %d | %s |",
		pkg, f.efficacy(), f.coverage(), f.killed, f.lived, f.timedOut, f.notCovered, now.Format("2006-01-02"))
	fmt.Fprintf(&b, "<!-- mutate:%s:begin -->\n<!-- row %s -->\n", pkg, row)
	fmt.Fprintf(&b, "### internal/%s\n\n", pkg)
	fmt.Fprintf(&b, "Command: `scripts/mutate.sh %s` (`gremlins unleash --workers %d --timeout-coefficient 3 -E '%s' ./internal/%s`, gremlins v0.6.0), %s, %d CPUs, %s.\n\n",
		pkg, workers, otherOS, pkg, now.Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), took.Round(time.Second))
	fmt.Fprintf(&b, "Test efficacy %.1f %% (killed over killed and lived), mutator coverage %.1f %% (mutants some test reaches).\n\n", f.efficacy(), f.coverage())
	fmt.Fprintf(&b, "| killed | lived | timed out | not covered | not viable |\n|---:|---:|---:|---:|---:|\n| %d | %d | %d | %d | %d |\n",
		f.killed, f.lived, f.timedOut, f.notCovered, f.notViable)
	list := func(title string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s:\n\n", title)
		for _, s := range items {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	list("Lived (each is killed by a test or listed under equivalent mutants below)", f.survivors)
	list("Not covered", f.uncovered)
	fmt.Fprintf(&b, "<!-- mutate:%s:end -->\n", pkg)
	return b.String()
}

const header = `# Mutation testing

Produced by ` + "`make mutate`" + ` (scripts/mutate.sh: installs gremlins v0.6.0 into .tools/bin, then
` + "`go run ./scripts/mutate`" + `). It runs ` + "`gremlins unleash --workers 2 --timeout-coefficient 3`" + ` on every
domain package, each directory under internal/ except testsvc, testutil and packerutil (test helpers and
Packer UI glue; the list is ` + "`excluded`" + ` in scripts/mutate/main.go), with OSIMAGE_REQUIRE_TOOLS=1,
leaving out files built only for other systems (` + "`*_windows.go`, `*_darwin.go`, `*_other.go`" + `).
` + "`scripts/mutate.sh sparse vhd`" + ` runs some; ` + "`MUTATE_WORKERS=1`" + ` on a shared machine. Not part of
` + "`make test`" + `: it runs a package's tests once per mutant.

Test efficacy is killed / (killed + lived); mutator coverage is (killed + lived) / (killed + lived + not
covered). Timed-out mutants (the tests ran over 3x their normal time, often an endless loop the mutant
made) count in neither. Target: at least 90 % efficacy per package; every lived mutant is killed by a new
test or listed under "Equivalent mutants" with the reason.

`

const summaryBegin, summaryEnd = "<!-- mutate:summary:begin -->", "<!-- mutate:summary:end -->"

const equivalent = `
## Equivalent mutants

Lived mutants that no test can kill because the program behaves the same, with the reason.
`

var (
	rowRE     = regexp.MustCompile(`(?m)^<!-- row (\|.*\|) -->$`)
	sectionRE = func(pkg string) *regexp.Regexp {
		return regexp.MustCompile(`(?s)<!-- mutate:` + regexp.QuoteMeta(pkg) + `:begin -->.*?<!-- mutate:` + regexp.QuoteMeta(pkg) + `:end -->\n`)
	}
)

// update puts sec in place of pkg's section of doc (or adds it, keeping
// the sections sorted by package) and rebuilds the summary table.
func update(doc, pkg, sec string) string {
	if !strings.Contains(doc, summaryBegin) {
		doc = header + summaryBegin + "\n" + summaryEnd + "\n\n## Per package\n\n" + equivalent
	}
	if re := sectionRE(pkg); re.MatchString(doc) {
		doc = re.ReplaceAllLiteralString(doc, sec)
	} else {
		// Before the first section of a later package, else before the
		// equivalent-mutants part, else at the end.
		at := -1
		for _, m := range regexp.MustCompile(`<!-- mutate:([^:]+):begin -->`).FindAllStringSubmatchIndex(doc, -1) {
			if name := doc[m[2]:m[3]]; name != "summary" && name > pkg {
				at = m[0]
				break
			}
		}
		if at < 0 {
			if at = strings.Index(doc, "\n## Equivalent mutants"); at >= 0 {
				at++
			} else {
				at = len(doc)
			}
		}
		doc = doc[:at] + sec + "\n" + doc[at:]
	}
	var rows []string
	for _, m := range rowRE.FindAllStringSubmatch(doc, -1) {
		rows = append(rows, m[1])
	}
	table := "| package | test efficacy | mutator coverage | killed | lived | timed out | not covered | date |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---|\n" + strings.Join(rows, "\n") + "\n"
	i, j := strings.Index(doc, summaryBegin), strings.Index(doc, summaryEnd)
	return doc[:i] + summaryBegin + "\n" + table + doc[j:]
}
