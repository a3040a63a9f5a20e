package promtext

import "testing"

func TestParse(t *testing.T) {
	s, err := Parse([]byte("# HELP x y\n# TYPE x counter\nx 3\n\nx_total{a=\"b c\",d=\"\"} 1.5e+06\n"))
	if err != nil || len(s) != 2 || s["x"] != 3 || s[`x_total{a="b c",d=""}`] != 1.5e6 {
		t.Errorf("Parse = %v, %v", s, err)
	}
	for _, bad := range []string{"novalue\n", "x abc\n"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
