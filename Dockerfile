# mailhook container image: a static binary on distroless, running as uid 65532.
#
#   docker build --build-arg VERSION=v1.2.3 -t mailhook .
#   docker run -p 2525:2525 -p 8080:8080 -v mailhook-data:/data mailhook
#
# Base images are pinned by tag and by multi-arch index digest, so a re-pushed
# tag cannot change the image under us. The digests could not be resolved from
# the machine this file was written on (no registry access); they are the
# index digests public build files recorded for these tags in September 2026.
# Before a release, re-check both and bump tag and digest together:
#   docker buildx imagetools inspect golang:1.26.8-bookworm
#   docker buildx imagetools inspect gcr.io/distroless/static-debian12:nonroot
# The Go tag must be at least the go directive in go.mod (GOTOOLCHAIN=local
# makes an older one fail instead of downloading a toolchain).

# ---- build: runs on the builder's platform and cross-compiles -------------
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
ENV GOTOOLCHAIN=local
WORKDIR /src

# Modules first: this layer is reused until go.mod or go.sum change.
# third_party holds a module go.mod replaces (third_party/chardet).
COPY go.mod go.sum ./
COPY third_party/ third_party/
RUN go mod download && go mod verify

COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mailhook ./cmd/mailhook

# The runtime image has no shell to mkdir with: make the store directory here
# and copy it over with its owner.
RUN mkdir -p /out/data

# ---- runtime: static binary, CA certificates, tzdata, /etc/passwd ---------
FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
ARG VERSION=dev
LABEL org.opencontainers.image.title="mailhook" \
      org.opencontainers.image.description="Receives email over SMTP and POSTs it, signed, to webhooks" \
      org.opencontainers.image.source="https://github.com/mailhook/mailhook" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=build /out/mailhook /mailhook
COPY --from=build --chown=65532:65532 /out/data /data

# The embedded filesystem store, so `docker run` works with nothing else.
# Point MAILHOOK_STORE at s3://bucket/prefix to run several replicas.
ENV MAILHOOK_STORE=file:///data
VOLUME /data

# nonroot in distroless; numeric so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532

# SMTP (MAILHOOK_SMTP_ADDR) and HTTP: health, metrics, admin (MAILHOOK_HTTP_ADDR).
EXPOSE 2525 8080

# No shell or curl here: the binary probes its own /healthz. It reads
# MAILHOOK_HTTP_ADDR, so a changed HTTP port is followed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/mailhook", "healthcheck"]

ENTRYPOINT ["/mailhook"]
CMD ["serve"]
