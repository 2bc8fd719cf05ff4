// Command bench runs the plugin's benchmarks side by side with the tools a
// user would otherwise use, and writes the results into BENCHMARKS.md.
//
//	go build -o .bench/osimage-bench ./bench && .bench/osimage-bench [-n 5] [-out BENCHMARKS.md] [suite...]
//
// Every suite measures each command in its own process (so peak memory is
// that command's own), alternating between the contenders, and reports the
// median wall time, ratios and peak resident memory. `make bench` runs all
// suites.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// suite is one benchmark; it returns a Markdown section body.
type suite struct {
	name  string
	title string
	run   func(cfg config) (string, error)
}

type config struct {
	n     int    // repetitions per contender
	work  string // scratch directory
	self  string // path of this binary, for child processes that need the Packer SDK
	child string // path of bench/child, for the plugin's own operations
}

var suites []suite

func register(s suite) { suites = append(suites, s) }

func main() {
	// Child mode: this binary also runs the plugin's own operations, so that
	// each is measured in a process of its own.
	if len(os.Args) > 1 && os.Args[1] == "child" {
		if err := child(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		return
	}
	n := flag.Int("n", 5, "repetitions per contender")
	out := flag.String("out", "BENCHMARKS.md", "Markdown file to update")
	work := flag.String("work", ".bench", "scratch directory (needs several GiB of sparse space)")
	flag.String("child", "", "bench/child binary (default: osimage-bench-child next to this one)")
	flag.Parse()
	self, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	if err := os.MkdirAll(*work, 0o755); err != nil {
		fatal(err)
	}
	want := map[string]bool{}
	for _, a := range flag.Args() {
		want[a] = true
	}
	child := flag.Lookup("child").Value.String()
	if child == "" {
		child = filepath.Join(filepath.Dir(self), "osimage-bench-child")
	}
	if _, err := os.Stat(child); err != nil {
		fatal(fmt.Errorf("bench/child binary: %w (build it: go build -o %s ./bench/child)", err, child))
	}
	cfg := config{n: *n, work: *work, self: self, child: child}
	sort.SliceStable(suites, func(i, j int) bool { return suites[i].name < suites[j].name })
	ran := 0
	for _, s := range suites {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s\n", s.name)
		body, err := s.run(cfg)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", s.name, err))
		}
		fmt.Println(body)
		if err := updateSection(*out, s.name, s.title, body); err != nil {
			fatal(err)
		}
		ran++
	}
	if ran == 0 {
		var names []string
		for _, s := range suites {
			names = append(names, s.name)
		}
		fatal(fmt.Errorf("no suite matched %v; suites: %s", flag.Args(), strings.Join(names, ", ")))
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func child(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no child operation")
	}
	for _, c := range children {
		if c.name == args[0] {
			start := time.Now()
			if err := c.run(args[1:]); err != nil {
				return err
			}
			fmt.Printf("op-ns: %d\n", time.Since(start).Nanoseconds())
			return nil
		}
	}
	return fmt.Errorf("unknown child operation %q", args[0])
}

type childOp struct {
	name string
	run  func(args []string) error
}

var children []childOp

func registerChild(name string, run func(args []string) error) {
	children = append(children, childOp{name, run})
}
