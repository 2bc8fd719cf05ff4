package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/imagedef/imagedeftest"
)

func init() {
	register(suite{name: "matrix", title: "osimage-matrix: load and expand image definitions", run: benchMatrix})
}

func benchMatrix(cfg config) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `make bench` (suite `matrix`, %d runs each, each in a fresh process). Machine: %s.\n\n", cfg.n, machine())
	b.WriteString("Each image file declares 4 dimensions (2 architectures x 1 platform x 1 Hyper-V generation x 5 flavors = 10 variants) with an exclude rule, a `when` rule that matches half the variants, delivery tables with `\"*\"` values and two publish targets, so 1,000 image files give 10,000 variants. Load reads, parses and checks every file (definition paths included); Expand is the cross product, rules, naming and target resolution.\n\n")
	b.WriteString("The floor is the same files read and decoded by go-toml into maps, one after the other, with no checks and no expansion (what any reader of these files pays): it says how fast this machine is at the work itself. \"Second run\" is load + expand done twice in one process, the second timed: the same work on a heap that has already grown, so the difference to the first is what a fresh process pays to fault in new memory (minor page faults counted in the first).\n\n")
	b.WriteString("| image files | variants | load + expand (median) | per variant | load | expand | per variant (expand) | peak memory | minor faults | second run | floor: read + decode | vs floor |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	type row struct {
		files, variants int
		total, per      time.Duration
	}
	var rows []row
	for _, files := range []int{10, 100, 1000} {
		dir := filepath.Join(cfg.work, "matrix", strconv.Itoa(files))
		os.RemoveAll(dir)
		root, err := imagedeftest.WriteTree(dir, files)
		if err != nil {
			return "", err
		}
		n := files * 10
		res, err := compare(cfg.n, []contender{
			{name: "load+expand", argv: []string{cfg.child, "matrix", root, strconv.Itoa(n)}, ownPeak: true},
			{name: "floor", argv: []string{cfg.child, "matrix-floor", root}, ownPeak: true},
			{name: "second run", argv: []string{cfg.child, "matrix-warm", root, strconv.Itoa(n)}, ownPeak: true},
		})
		if err != nil {
			return "", err
		}
		r, floor := res[0], res[1].medianOp()
		load, expand := medianField(r, "load-ns"), medianField(r, "expand-ns")
		op := r.medianOp()
		faults, second := int64(medianField(r, "minor-faults")), medianField(res[2], "second-ns")
		fmt.Fprintf(&b, "| %d | %d | %s | %s | %s | %s | %s | %s | %d | %s | %s | %.2fx |\n", files, n, fmtDur(op), fmtDur(op/time.Duration(n)),
			fmtDur(load), fmtDur(expand), fmtDur(expand/time.Duration(n)), fmtMiB(r.peakRSS()), faults, fmtDur(second), fmtDur(floor), float64(op)/float64(floor))
		rows = append(rows, row{files, n, op, op / time.Duration(n)})
	}
	last := rows[len(rows)-1]
	growth := float64(last.per) / float64(rows[1].per)
	verdict := "met"
	if last.total > 100*time.Millisecond {
		verdict = "**missed**"
	}
	fmt.Fprintf(&b, "\nTargets: linear growth: time per variant at 10,000 variants is %.2fx that at 1,000. Under 100 ms for 1,000 image files: %s, %s.\n", growth, fmtDur(last.total), verdict)
	return b.String(), nil
}

// medianField is the median of a "name: ns" value the child printed.
func medianField(r result, name string) time.Duration {
	var ds []time.Duration
	for _, s := range r.samples {
		if v, ok := s.fields[name]; ok {
			ds = append(ds, v)
		}
	}
	if len(ds) == 0 {
		return 0
	}
	return median(ds)
}
