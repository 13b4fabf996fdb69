package exotel

import "testing"

func TestStrings(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{"host api", HostAPI.String(), "api"},
		{"host ccm", HostCCM.String(), "ccm"},
		{"host invalid", Host(7).String(), "host(7)"},
		{"family unknown", FamilyUnknown.String(), "unknown"},
		{"family v1", FamilyV1.String(), "v1"},
		{"family v2_beta", FamilyV2Beta.String(), "v2_beta"},
		{"family v2", FamilyV2.String(), "v2"},
		{"family v3", FamilyV3.String(), "v3"},
		{"family invalid", Family(9).String(), "family(9)"},
		{"bucket voice_v1", BucketVoiceV1.String(), "voice_v1"},
		{"bucket voice_v2", BucketVoiceV2.String(), "voice_v2"},
		{"bucket sms", BucketSMS.String(), "sms"},
		{"bucket whatsapp", BucketWhatsApp.String(), "whatsapp"},
		{"bucket other", BucketOther.String(), "other"},
		{"bucket invalid", Bucket(NumBuckets).String(), "bucket(5)"},
		{"shape json", ShapeJSON.String(), "json"},
		{"shape xml", ShapeXML.String(), "xml"},
		{"shape v2", ShapeV2.String(), "v2"},
		{"shape invalid", Shape(3).String(), "shape(3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestBuckets(t *testing.T) {
	all := Buckets()
	if len(all) != NumBuckets {
		t.Fatalf("len(Buckets()) = %d, want %d", len(all), NumBuckets)
	}
	for i, b := range all {
		if int(b) != i {
			t.Errorf("Buckets()[%d] = %d, want in order", i, b)
		}
	}
	all[0] = BucketOther
	if Buckets()[0] != BucketVoiceV1 {
		t.Error("Buckets shares its slice between calls")
	}
}

func TestParseBucket(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Bucket
		ok   bool
	}{
		{"voice_v1", "voice_v1", BucketVoiceV1, true},
		{"voice_v2", "voice_v2", BucketVoiceV2, true},
		{"sms", "sms", BucketSMS, true},
		{"whatsapp", "whatsapp", BucketWhatsApp, true},
		{"other", "other", BucketOther, true},
		{"upper case", "SMS", 0, false},
		{"empty", "", 0, false},
		{"unknown", "voice_v3", 0, false},
		{"invalid form", "bucket(5)", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseBucket(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ParseBucket(%q) = %v, %v, want %v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
	for _, b := range Buckets() {
		t.Run("round trip/"+b.String(), func(t *testing.T) {
			if got, ok := ParseBucket(b.String()); !ok || got != b {
				t.Errorf("ParseBucket(%q) = %v, %v", b.String(), got, ok)
			}
		})
	}
}
