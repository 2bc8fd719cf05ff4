package pageblob

import (
	"sort"

	"github.com/osimage/packer-plugin-osimage/internal/sparse"
)

// PageSize is the page blob's unit: offsets and lengths of Put Page are
// multiples of it.
const PageSize = 512

// MaxPutPage is the largest body of one Put Page request (4 MiB).
const MaxPutPage = 4 << 20

// pageAlign widens the extents to whole pages within [0, size), merges the
// ones that touch and returns them sorted.
func pageAlign(ext []sparse.Extent, size int64) []sparse.Extent {
	var out []sparse.Extent
	for _, e := range ext {
		lo := e.Off / PageSize * PageSize
		hi := min((e.End()+PageSize-1)/PageSize*PageSize, size)
		if hi <= lo {
			continue
		}
		out = append(out, sparse.Extent{Off: lo, Len: hi - lo})
	}
	return merge(out)
}

// merge sorts ranges and joins overlapping or adjacent ones.
func merge(rs []sparse.Extent) []sparse.Extent {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Off < rs[j].Off })
	var out []sparse.Extent
	for _, r := range rs {
		if r.Len <= 0 {
			continue
		}
		if n := len(out); n > 0 && r.Off <= out[n-1].End() {
			if r.End() > out[n-1].End() {
				out[n-1].Len = r.End() - out[n-1].Off
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// nonZeroRuns returns the runs of pages of buf (which starts at blob
// offset off and is a whole number of pages, except perhaps at the end of
// the blob) that hold a non-zero byte, each at most MaxPutPage long.
func nonZeroRuns(buf []byte, off int64) []sparse.Extent {
	var out []sparse.Extent
	for i := 0; i < len(buf); i += PageSize {
		end := min(i+PageSize, len(buf))
		if sparse.IsZero(buf[i:end]) {
			continue
		}
		p := off + int64(i)
		if n := len(out); n > 0 && out[n-1].End() == p && out[n-1].Len+int64(end-i) <= MaxPutPage {
			out[n-1].Len += int64(end - i)
			continue
		}
		out = append(out, sparse.Extent{Off: p, Len: int64(end - i)})
	}
	return out
}

// covers reports whether the sorted, merged ranges hold all of r.
func covers(rs []sparse.Extent, r sparse.Extent) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].End() > r.Off })
	return i < len(rs) && rs[i].Off <= r.Off && rs[i].End() >= r.End()
}

// uncovered returns the parts of the sorted, merged ranges rs that lie in
// [lo, hi) and outside every range of keep (sorted).
func uncovered(rs []sparse.Extent, lo, hi int64, keep []sparse.Extent) []sparse.Extent {
	var out []sparse.Extent
	i := sort.Search(len(rs), func(i int) bool { return rs[i].End() > lo })
	k := 0
	for ; i < len(rs) && rs[i].Off < hi; i++ {
		a, b := max(rs[i].Off, lo), min(rs[i].End(), hi)
		for a < b {
			for k < len(keep) && keep[k].End() <= a {
				k++
			}
			if k == len(keep) || keep[k].Off >= b {
				out = append(out, sparse.Extent{Off: a, Len: b - a})
				break
			}
			if keep[k].Off > a {
				out = append(out, sparse.Extent{Off: a, Len: keep[k].Off - a})
			}
			a = keep[k].End()
		}
	}
	return out
}

// splitMax cuts ranges into pieces of at most n bytes.
func splitMax(rs []sparse.Extent, n int64) []sparse.Extent {
	var out []sparse.Extent
	for _, r := range rs {
		for r.Len > 0 {
			l := min(r.Len, n)
			out = append(out, sparse.Extent{Off: r.Off, Len: l})
			r.Off += l
			r.Len -= l
		}
	}
	return out
}
