// Command demosummary prints the summary table of `make demo` from the
// release manifest osimage-release wrote: per variant its files, the VHD
// size, the blob, the gallery versions, the OCI indexes, and which steps
// this run did and which it skipped (done by an earlier run).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/release"
)

func main() {
	manifest := flag.String("manifest", "", "the release manifest (JSON)")
	since := flag.Int64("since", 0, "the run's start (Unix seconds): steps recorded before it were skipped")
	flag.Parse()
	b, err := os.ReadFile(*manifest)
	if err != nil {
		log.Fatal(err)
	}
	var m release.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		log.Fatalf("%s: %v", *manifest, err)
	}
	start := time.Unix(*since, 0)
	when := func(t *time.Time) string {
		switch {
		case t == nil:
			return "-"
		case t.Before(start):
			return "skipped"
		}
		return "done"
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "VARIANT\tFILES\tVHD\tBUILD\tTARGET\tPUBLISH\tRELEASE\tPUBLISHED AS")
	for _, d := range m.Variants {
		var roles []string
		vhd := "-"
		for _, f := range d.Files {
			roles = append(roles, f.Role)
		}
		first := true
		for _, t := range d.Targets {
			var as []string
			if t.Blob != nil {
				vhd = fmt.Sprintf("%d MiB", t.Blob.Size>>20)
				as = append(as, "blob "+t.Blob.URL+" md5 "+t.Blob.MD5)
			}
			for _, v := range t.Versions {
				latest := "in latest"
				if v.ExcludeFromLatest {
					latest = "excluded from latest"
				}
				as = append(as, fmt.Sprintf("%s %s (%s)", v.Generation, v.ID, latest))
			}
			if o := t.OCI; o != nil {
				for _, ix := range o.Indexes {
					as = append(as, fmt.Sprintf("%s:%s@%s", o.Repository, ix.Tag, ix.Digest))
				}
				if len(o.MovingTags) > 0 {
					as = append(as, "moving tags "+strings.Join(o.MovingTags, ", "))
				}
			}
			name, files, vhdCol, build := "", "", "", ""
			if first {
				name, files, vhdCol, build = d.Name, strings.Join(roles, ","), vhd, when(d.Built)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, files, vhdCol, build, t.Name, when(t.Published), when(t.Released), strings.Join(as, "; "))
			first = false
		}
		if first {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t-\t-\t-\t\n", d.Name, strings.Join(roles, ","), vhd, when(d.Built))
		}
	}
	w.Flush()
}
