package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestUpdateReplacesOnlyTheRunPackagesAndKeepsHandWrittenText(t *testing.T) {
	now := time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC)
	doc := update("", "vhd", section("vhd", figures{killed: 9, lived: 1, survivors: []string{"footer.go:1:2 X"}}, 1, time.Minute, now))
	doc = update(doc, "artifact", section("artifact", figures{killed: 3, notCovered: 1}, 1, time.Minute, now))
	doc += "- vhd footer.go:1:2 X: equivalent because reasons\n"
	doc = update(doc, "vhd", section("vhd", figures{killed: 10}, 2, time.Minute, now))

	for _, want := range []string{
		"| internal/artifact | 100.0 % | 75.0 % | 3 | 0 | 0 | 1 | 2026-11-30 |\n| internal/vhd | 100.0 % | 100.0 % | 10 | 0 | 0 | 0 | 2026-11-30 |\n",
		"`gremlins unleash --workers 2 --timeout-coefficient 3 -E '_(windows|darwin|other)\\.go$' ./internal/vhd`",
		"equivalent because reasons",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("missing %q in\n%s", want, doc)
		}
	}
	if strings.Count(doc, "<!-- mutate:vhd:begin -->") != 1 || strings.Contains(doc, "footer.go:1:2 X\n") {
		t.Errorf("old vhd section kept:\n%s", doc)
	}
	if s, a := strings.Index(doc, summaryEnd), strings.Index(doc, "### internal/artifact"); s > a {
		t.Errorf("a section went before the summary table:\n%s", doc)
	}
	if a, v, e := strings.Index(doc, "### internal/artifact"), strings.Index(doc, "### internal/vhd"), strings.Index(doc, "## Equivalent"); !(a < v && v < e) {
		t.Errorf("sections out of order (artifact %d, vhd %d, equivalent %d)", a, v, e)
	}
}

func TestFiguresCountGremlinsStatusesLikeGremlins(t *testing.T) {
	var r result
	err := json.Unmarshal([]byte(`{"files":[{"file_name":"internal/x/a.go","mutations":[
		{"type":"ARITHMETIC_BASE","status":"LIVED","line":10,"column":2},
		{"type":"ARITHMETIC_BASE","status":"KILLED","line":1,"column":3},
		{"type":"ARITHMETIC_BASE","status":"KILLED","line":1,"column":4},
		{"type":"CONDITIONALS_BOUNDARY","status":"LIVED","line":7,"column":9},
		{"type":"CONDITIONALS_NEGATION","status":"TIMED OUT","line":8,"column":1},
		{"type":"INVERT_NEGATIVES","status":"NOT COVERED","line":9,"column":5},
		{"type":"INVERT_NEGATIVES","status":"NOT VIABLE","line":9,"column":6}]}]}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	f := count(r)
	if f.killed != 2 || f.lived != 2 || f.timedOut != 1 || f.notCovered != 1 || f.notViable != 1 {
		t.Fatalf("counted %+v", f)
	}
	if f.efficacy() != 50 || f.coverage() != 80 {
		t.Errorf("efficacy %v, coverage %v; want 50 and 80", f.efficacy(), f.coverage())
	}
	if strings.Join(f.survivors, ",") != "a.go:7:9 CONDITIONALS_BOUNDARY,a.go:10:2 ARITHMETIC_BASE" || strings.Join(f.uncovered, ",") != "a.go:9:5 INVERT_NEGATIVES" {
		t.Errorf("survivors %q, uncovered %q", f.survivors, f.uncovered)
	}
	if (figures{}).efficacy() != 0 || (figures{}).coverage() != 0 {
		t.Error("no mutants: want 0, not NaN")
	}
}

func TestPackagesListsDomainPackagesButNotTheExcludedOnes(t *testing.T) {
	t.Chdir("../..")
	all, err := packages(nil)
	if err != nil {
		t.Fatal(err)
	}
	got := " " + strings.Join(all, " ") + " "
	for _, want := range []string{"sparse", "vhd", "partition", "bootfiles", "artifact", "diskfmt", "kiwi", "imagedef"} {
		if !strings.Contains(got, " "+want+" ") {
			t.Errorf("%q not in %s", want, got)
		}
	}
	for name := range excluded {
		if strings.Contains(got, " "+name+" ") {
			t.Errorf("excluded %q in %s", name, got)
		}
	}
	if p, err := packages([]string{"./internal/vhd/", "internal/sparse", "bootfiles"}); err != nil || strings.Join(p, " ") != "vhd sparse bootfiles" {
		t.Errorf("packages(args) = %v, %v", p, err)
	}
	if _, err := packages([]string{"nosuch"}); err == nil || !strings.Contains(err.Error(), "internal/nosuch") {
		t.Errorf("unknown package: err = %v", err)
	}
}
