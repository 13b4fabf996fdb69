# syntax=docker/dockerfile:1
# Build: docker build -t exogate .
# Run:   docker run -p 127.0.0.1:8080:8080 -e EXOGATE_ALLOW_UNAUTHENTICATED=true -e EXOTEL_API_KEY -e EXOTEL_API_TOKEN -e EXOTEL_ACCOUNT_SID exogate
# Publish the port only to trusted callers: exogate adds the account's credentials.
#
# The admin listener (/metrics, /status, /healthz, /readyz, POST /-/reload)
# stays on the container's loopback, where HEALTHCHECK reaches it. To publish
# it, give it a bearer token from a secret file; exogate refuses an admin
# listener off loopback without one:
#   openssl rand -hex 32 > admin-token
#   docker run ... -p 127.0.0.1:9901:9901 -e EXOGATE_ADMIN_LISTEN=0.0.0.0:9901 \
#     -e EXOGATE_ADMIN_TOKEN_FILE=/run/secrets/exogate-admin-token \
#     -v "$PWD/admin-token:/run/secrets/exogate-admin-token:ro" exogate
#
# Receiving Exotel's callbacks (README, "Receiving Exotel's callbacks"): the
# webhook store is a file that must outlive the container, since a callback
# answered 200 exists nowhere else until delivered. Keep it on a named volume
# at /var/lib/exogate (the image's VOLUME, writable by uid 65532; Docker fills
# a new named volume with that directory's ownership) and say so in the
# configuration file, whose directory is the default and is not writable:
#   webhooks:
#     listen: 0.0.0.0:8443
#     store: {path: /var/lib/exogate/webhooks.db}
#     ...
# then publish the callback port where Exotel (or your TLS-terminating
# balancer) reaches it, and pass the secrets the section names:
#   docker run ... -p 8443:8443 -v exogate-hooks:/var/lib/exogate \
#     -v "$PWD/exogate.yaml:/etc/exogate/exogate.yaml:ro" \
#     -e EXOGATE_WEBHOOK_URL_SECRET -e CALLS_WEBHOOK_SECRET \
#     exogate serve -config /etc/exogate/exogate.yaml
# One store per container: a second exogate on the same volume refuses to
# start.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" -o /out/exogate .
# The webhook store's directory, made here because the final image has no
# shell. Copied as an entry of /out/lib (not as the source directory, whose
# contents alone COPY would take), so that --chown applies to it.
RUN mkdir -p -m 0700 /out/lib/exogate

# Static binary on a distroless base: CA roots for Exotel's TLS, no shell,
# runs as an unprivileged user (uid 65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/exogate /exogate
COPY --from=build --chown=65532:65532 /out/lib/ /var/lib/
USER 65532:65532
# Where webhooks.store.path belongs (above); an anonymous volume unless the
# run names one.
VOLUME /var/lib/exogate
# 9901 is the admin listener, once EXOGATE_ADMIN_LISTEN opens it (above);
# 8443 the callback listener, once webhooks.listen opens it.
EXPOSE 8080 9901 8443
# Inside a container the Exotel listener must not be loopback-only. The admin
# listener keeps its default, 127.0.0.1:9901.
ENV EXOGATE_LISTEN=0.0.0.0:8080
# No shell in the image: the binary checks its own readiness.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/exogate", "health"]
ENTRYPOINT ["/exogate"]
CMD ["serve"]
