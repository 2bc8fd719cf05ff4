package sourcedate

import (
	"strings"
	"testing"
	"time"
)

func env(v string) func(string) string {
	return func(k string) string {
		if k == Var {
			return v
		}
		return ""
	}
}

func TestSourceDateEpochWinsOverNowAndBadValuesAreNamed(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 11, 12, 999, time.FixedZone("x", 3600))
	if got, err := Time(env(""), now); err != nil || !got.Equal(now.Truncate(time.Second)) || got.Location() != time.UTC || got.Nanosecond() != 0 {
		t.Fatalf("unset: %v %v", got, err)
	}
	if got, err := Time(env(" 1764460800 "), now); err != nil || got != time.Unix(1764460800, 0).UTC() {
		t.Fatalf("set: %v %v", got, err)
	}
	if got, err := Time(env("0"), now); err != nil || got.Unix() != 0 {
		t.Fatalf("zero: %v %v", got, err)
	}
	for _, bad := range []string{"-1", "yesterday", "1.5"} {
		if _, err := Time(env(bad), now); err == nil || !strings.Contains(err.Error(), `SOURCE_DATE_EPOCH="`+bad+`"`) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if Set(env("")) || !Set(env("1")) {
		t.Fatal("Set")
	}
}
