module github.com/exogate/exogate/integration/vault

go 1.26.8

replace github.com/exogate/exogate => ../..

replace github.com/hashicorp/vault/sdk => github.com/hashicorp/vault/sdk v0.20.0

replace github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3

replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
