package config

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// fill sets every field of the struct v points to to a value that is not
// zero and differs from field to field.
func fill(t *testing.T, v any) {
	t.Helper()
	s := reflect.ValueOf(v).Elem()
	for i := range s.NumField() {
		f := s.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(fmt.Sprintf("value-%d", i))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			if f.Type() == reflect.TypeFor[time.Duration]() {
				f.SetInt(int64(i+1) * int64(time.Second))
			} else {
				f.SetInt(int64(i + 1))
			}
		default:
			t.Fatalf("%s.%s: fill does not know %s", s.Type(), s.Type().Field(i).Name, f.Kind())
		}
	}
}

// sameFields checks that every field of want has a field of the same name
// and value in got, and that got has no other field.
func sameFields(t *testing.T, want, got any) {
	t.Helper()
	w, g := reflect.ValueOf(want), reflect.ValueOf(got)
	if w.NumField() != g.NumField() {
		t.Errorf("%s has %d fields, %s %d: map the new one (or say why not)", w.Type(), w.NumField(), g.Type(), g.NumField())
	}
	for i := range w.NumField() {
		name := w.Type().Field(i).Name
		gf := g.FieldByName(name)
		if !gf.IsValid() {
			t.Errorf("%s.%s has no counterpart in %s", w.Type(), name, g.Type())
			continue
		}
		if !reflect.DeepEqual(w.Field(i).Interface(), gf.Interface()) {
			t.Errorf("%s.%s = %v, mapped to %v", w.Type(), name, w.Field(i).Interface(), gf.Interface())
		}
	}
}

// The mappings from the file format to the runtime packages copy every
// field: a field added to either side fails here until it is mapped.
func TestMappingsCopyEveryField(t *testing.T) {
	var r Rule
	fill(t, &r)
	sameFields(t, r, r.RateLimit())

	var a VaultAuth
	fill(t, &a)
	sameFields(t, a, a.Credentials())

	var s VaultSecret
	fill(t, &s)
	sameFields(t, s, s.Credentials())
}
