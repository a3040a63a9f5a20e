package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"

	"github.com/mailhook/mailhook/route"
)

// Field describes one variable, read from the Config struct's tags.
type Field struct {
	Var     string // full name, MAILHOOK_…
	Default string
	Help    string
	Secret  bool
	// Redact names what in the value is secret when it is not wholly:
	// "url" (a URL's password and query), "routes" (those of each route).
	Redact string
	field  string // Go field name
	index  int
}

var fields = sync.OnceValue(func() []Field {
	t := reflect.TypeOf(Config{})
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("env"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, Field{
			Var:     Prefix + name,
			Default: sf.Tag.Get("envDefault"),
			Help:    sf.Tag.Get("help"),
			Secret:  sf.Tag.Get("secret") == "true",
			Redact:  sf.Tag.Get("redact"),
			field:   sf.Name,
			index:   i,
		})
	}
	return out
})

// Fields lists every variable in declaration order.
func Fields() []Field { return fields() }

// WriteHelp writes the Markdown table of every variable: the README's
// configuration table is this output.
func WriteHelp(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n| --- | --- | --- |\n")
	for _, f := range Fields() {
		def := "`" + f.Default + "`"
		if f.Default == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", f.Var, def, strings.ReplaceAll(f.Help, "|", `\|`))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteEffective writes the effective configuration as VAR=value lines,
// with secrets redacted.
func (c *Config) WriteEffective(w io.Writer) error {
	v := reflect.ValueOf(c).Elem()
	var b strings.Builder
	for _, f := range Fields() {
		fv := v.Field(f.index)
		var s string
		if fv.Kind() == reflect.Slice {
			parts := make([]string, fv.Len())
			for i := range parts {
				parts[i] = fmt.Sprint(fv.Index(i).Interface())
			}
			s = strings.Join(parts, ",")
		} else {
			s = fmt.Sprint(fv.Interface())
		}
		switch {
		case f.Secret && s != "":
			s = "<redacted>"
		case f.Redact == "url" && s != "":
			s = route.RedactURL(s) // a password or a token may ride in the URL
		case f.Redact == "routes" && s != "":
			s = route.RedactRoutes(s)
		}
		fmt.Fprintf(&b, "%s=%s\n", f.Var, s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func secretDecodes(s string) error {
	s = strings.TrimPrefix(s, "whsec_")
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return errors.New("not valid base64 after whsec_ (generate one with: echo whsec_$(openssl rand -base64 32))")
	}
	if len(key) == 0 {
		return errors.New("empty key")
	}
	return nil
}
