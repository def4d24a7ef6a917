# syntax=docker/dockerfile:1
# The Annexa image: one static-path binary, /annexa, on distroless, running as UID 65532.
#   docker build -t ghcr.io/annexa-dev/annexa:0.1.0 .
# The Helm chart runs it as `/annexa run ...` with a read-only root filesystem.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the crates.io index and the build tree between builds; the binary is copied
# out of the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin annexa \
    && cp target/release/annexa /annexa

# distroless "cc": glibc, libgcc and CA certificates, no shell, no package manager; the image's
# nonroot user is 65532. (The "static" variant would need a musl build; ring and glibc are
# simpler to keep on the platform default.)
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="annexa" \
      org.opencontainers.image.description="Kubernetes operator enforcing ISO/IEC 27001:2022 Annex A controls on AI workloads" \
      org.opencontainers.image.source="https://github.com/annexa-dev/annexa" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build --chown=0:0 --chmod=0555 /annexa /annexa
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/annexa"]
