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

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" -o /out/exogate .

# Static binary on a distroless base: CA roots for Exotel's TLS, no shell,
# runs as an unprivileged user (uid 65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/exogate /exogate
USER 65532:65532
# 9901 is the admin listener, once EXOGATE_ADMIN_LISTEN opens it (above).
EXPOSE 8080 9901
# Inside a container the Exotel listener must not be loopback-only. The admin
# listener keeps its default, 127.0.0.1:9901.
ENV EXOGATE_LISTEN=0.0.0.0:8080
# No shell in the image: the binary checks its own readiness.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/exogate", "health"]
ENTRYPOINT ["/exogate"]
CMD ["serve"]
