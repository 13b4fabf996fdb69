package vault

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/exogate/exogate/credentials"
)

// With delete_version_after set on the secret, every version carries a
// deletion time in the future: a rollback still finds the previous
// version, which is not deleted yet.
func TestRotateRollbackWithDeleteVersionAfter(t *testing.T) {
	v := startVault(t)
	ctx := context.Background()
	kv := v.root.KVv2("secret")
	must(t, kv.PutMetadata(ctx, acmePath, api.KVMetadataPutInput{DeleteVersionAfter: time.Hour}))
	secrets.add(vKeyOld, vTokenOld, vKeyNew, vTokenNew)
	for _, pair := range [][2]string{{vKeyOld, vTokenOld}, {vKeyNew, vTokenNew}} {
		_, err := kv.Put(ctx, acmePath, map[string]any{"api_key": pair[0], "api_token": pair[1]})
		must(t, err)
	}
	p, err := credentials.NewPublisher(credentials.PublishConfig{
		Spec:       credentials.Spec{Account: "acme", Source: "vault", Vault: credentials.VaultSecret{Mount: "secret", Path: acmePath}},
		Vault:      credentials.VaultConfig{Address: v.addr, CAFile: v.caFile},
		VaultToken: v.root.Token(),
	})
	must(t, err)
	base, err := p.Read(ctx)
	must(t, err)
	key, token, version, err := p.Previous(ctx, base)
	if err != nil || version != "v1" || key != vKeyOld || token != vTokenOld {
		t.Fatalf("Previous = %s, the old pair %v, %v; want v1", version, key == vKeyOld && token == vTokenOld, err)
	}
	// A version deleted now is skipped.
	must(t, kv.DeleteVersions(ctx, acmePath, []int{1}))
	if _, _, version, err := p.Previous(ctx, base); err == nil {
		t.Errorf("Previous = %s after v1 was deleted, want an error", version)
	}
}
