// Package fieldtest is for tests that must fail when a type gains a field
// that a hand-written encoder does not write yet.
package fieldtest

import (
	"reflect"
	"testing"
	"time"
)

// AllSet fails the test for every exported field of the struct *v, and of
// the structs it holds through pointers and slices (their first element),
// that is zero; fix names what to update, as in "set it in fullRecord and
// encode it in appendRecord". Times count as values, not structs.
func AllSet(t testing.TB, v any, fix string) {
	t.Helper()
	rv := reflect.ValueOf(v).Elem()
	allSet(t, rv, rv.Type().Name(), fix)
}

func allSet(t testing.TB, v reflect.Value, path, fix string) {
	t.Helper()
	if v.Type() == reflect.TypeFor[time.Time]() {
		return
	}
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		p := path + "." + f.Name
		if fv.IsZero() {
			t.Errorf("%s is unset: %s", p, fix)
			continue
		}
		switch fv.Kind() {
		case reflect.Pointer:
			fv = fv.Elem()
		case reflect.Slice:
			fv = fv.Index(0)
		}
		if fv.Kind() == reflect.Struct {
			allSet(t, fv, p, fix)
		}
	}
}
