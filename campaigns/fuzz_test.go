package campaigns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParseMicros(f *testing.F) {
	for _, s := range []string{"4.50", "0.000001", "12", "-1", "1e3", ".5", "9223372036853.999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMicros(s)
		if err != nil {
			return
		}
		if m < 0 {
			t.Fatalf("ParseMicros(%q) = %d: negative", s, m)
		}
		back, err := ParseMicros(FormatMicros(m))
		if err != nil || back != m {
			t.Fatalf("ParseMicros(%q) = %d, but FormatMicros gives %q -> %d, %v", s, m, FormatMicros(m), back, err)
		}
	})
}

// FuzzConfig: any file content is either rejected with problems or compiles
// into a snapshot whose markup renders without placeholders.
func FuzzConfig(f *testing.F) {
	files, _ := filepath.Glob("../configs/campaigns/*.yaml")
	bad, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, name := range append(files, bad...) {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("f.yaml", data)
		if err != nil {
			return
		}
		s, err := Compile([]Config{c})
		if err != nil {
			if len(Problems(err)) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			return
		}
		for _, cr := range s.Creatives {
			if adm := string(AppendAdm(nil, cr, []byte("C"), []byte("I"))); strings.Contains(adm, PlaceholderImpURL) {
				t.Fatalf("placeholder left in %q", adm)
			}
		}
	})
}
