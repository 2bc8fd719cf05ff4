package sparse

import "os"

func blocksOf(fi os.FileInfo) int64 { return (fi.Size() + 511) / 512 }

// Allocated returns the bytes a file occupies on disk (its size on Windows).
func Allocated(fi os.FileInfo) int64 { return blocksOf(fi) * 512 }
