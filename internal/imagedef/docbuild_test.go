package imagedef

import (
	"reflect"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
)

// docBuilderSeeds exercise the key and table rules of TOML.
var docBuilderSeeds = []string{
	"[images.a]\nx = 1\n[images.a.b]\ny = \"s\"\n",
	"[images.a.b]\n[images.a]\nx = 1\n",
	"[images.a]\n[images.a]\n",
	"[images.a.b]\n[images.a.b]\n",
	"[images]\na.b = 1\na.c = 2\n",
	"[images]\na.b = 1\n[images.a]\n",
	"[images]\na.b = 1\n[images.a.c]\n",
	"[images]\na.b = 1\na = 2\n",
	"[images]\na = 1\na.b = 2\n",
	"[images]\na = { b = 1 }\na.c = 2\n",
	"[images]\na = { b = 1 }\n[images.a.c]\n",
	"[images]\na = { b.c = 1, b.d = [1, { e = 2 }] }\n",
	"[images]\na = { b = 1, b = 2 }\n",
	"[images]\na = [{ b = 1 }, { b = 2 }]\n",
	"[images]\na = [{ b = 1, b = 1 }]\n",
	"[[resources.x]]\na = 1\n[[resources.x]]\na = 2\n[resources.x.sub]\nb = 3\n",
	"[[resources.x]]\n[resources.x]\n",
	"[resources.x]\n[[resources.x]]\n",
	"[[resources.x]]\n[[resources.x.y]]\n[[resources.x]]\n[[resources.x.y]]\n[[resources.x.y]]\n",
	"[[resources.x]]\nz.a = 1\n[[resources.x]]\nz.a = 2\n",
	"resources.x = [1]\n[[resources.x]]\n",
	"[images]\na = 1\n[images.a.b]\n",
	"images.a.b = 1\n[images.a]\n",
	"images.a.b = 1\n[images.c]\n",
	"[images]\ni = -0\nj = +1\nk = 1_000\nl = 0x10\nm = 9223372036854775807\nn = -9223372036854775808\no = 9223372036854775808\np = 1.5\nq = 1979-05-27\nr = true\ns = false\n",
	"[images]\n\"quoted.key\" = 1\n'lit' = 2\n\"a\\u0041\" = 3\nx = \"\"\"\nmulti\nline\"\"\"\ny = '''\nlit'''\n",
	"[images.\"a b\".c]\nd = []\ne = [[]]\nf = [[1], [\"x\"]]\n",
	"[images]\n[images.x]\n[variants]\n[distros.d]\n[project]\n[resources]\n",
	"includes = []\n[images]\n",
	"includes = [\"a\"]\nincludes = [\"b\"]\n",
	"[images]\n# comment\na = [ # c\n  1, # d\n]\n",
	"[images]\r\na = 1\r\n",
}

// FuzzDocBuilder checks that the values scanFile builds are those
// toml.Unmarshal decodes, for every document the builder accepts.
func FuzzDocBuilder(f *testing.F) {
	for _, s := range docBuilderSeeds {
		f.Add([]byte(s))
	}
	addFileSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDocBuilder(t, data)
	})
}

func checkDocBuilder(t *testing.T, data []byte) {
	t.Helper()
	built, err := scanFile(&srcFile{rel: "f.toml", path: "/f.toml", data: data})
	if err != nil || built == nil {
		return
	}
	var want map[string]any
	if err := toml.Unmarshal(data, &want); err != nil {
		t.Fatalf("built %v, but toml.Unmarshal fails: %v\n%s", built, err, data)
	}
	if want == nil {
		want = map[string]any{}
	}
	if !reflect.DeepEqual(built, want) {
		t.Fatalf("built %#v\nwant %#v\n%s", built, want, data)
	}
}

func TestDocBuilderAgreesWithUnmarshal(t *testing.T) {
	accepted := 0
	for _, s := range docBuilderSeeds {
		checkDocBuilder(t, []byte(s))
		if v, err := scanFile(&srcFile{data: []byte(s)}); err == nil && v != nil {
			accepted++
		}
	}
	if accepted < len(docBuilderSeeds)/3 {
		t.Errorf("the builder accepted only %d of %d documents", accepted, len(docBuilderSeeds))
	}
}
