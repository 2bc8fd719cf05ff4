// Package sourcedate reads SOURCE_DATE_EPOCH
// (reproducible-builds.org/specs/source-date-epoch): the time every
// timestamp a build writes (VHD footers, OCI configs, SBOMs) takes, so that
// the same input gives the same bytes.
package sourcedate

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Var is the environment variable.
const Var = "SOURCE_DATE_EPOCH"

// Time returns SOURCE_DATE_EPOCH as a UTC time when getenv gives a value,
// else now in UTC truncated to the second. A value that is not a
// non-negative integer is an error naming it.
func Time(getenv func(string) string, now time.Time) (time.Time, error) {
	s := strings.TrimSpace(getenv(Var))
	if s == "" {
		return now.UTC().Truncate(time.Second), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("%s=%q: want a non-negative number of seconds since 1970", Var, s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// Set reports whether getenv gives SOURCE_DATE_EPOCH a value.
func Set(getenv func(string) string) bool { return strings.TrimSpace(getenv(Var)) != "" }
