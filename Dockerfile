# syntax=docker/dockerfile:1
#
# Container image of aliyun-backup-exporter.
#
#   docker build -t aliyun-backup-exporter .
#   docker run --rm -p 9817:9817 aliyun-backup-exporter --demo
#
# The builder runs deploy/docker/build.sh (cargo build --release --locked), the
# same script CI runs, so the image contains the binary CI tested. The runtime
# image is distroless (glibc, CA certificates, no shell) and runs as the
# unprivileged "nonroot" user (uid 65532).

FROM rust:1-bookworm AS builder
# Shown as the revision label of aliyun_backup_exporter_build_info:
#   docker build --build-arg GIT_REVISION=$(git rev-parse --short HEAD) ...
ARG GIT_REVISION=unknown
WORKDIR /src
COPY . .
# Cache mounts keep the crates.io index, downloaded crates and the target
# directory between builds; the binary is copied out to /out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    deploy/docker/build.sh /out

FROM gcr.io/distroless/cc-debian12:nonroot
ARG GIT_REVISION=unknown
LABEL org.opencontainers.image.revision="${GIT_REVISION}" \
      org.opencontainers.image.title="aliyun-backup-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Alibaba Cloud database backups (Redis / Tair, RDS, MongoDB, PolarDB)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/aliyun-backup-exporter/aliyun-backup-exporter"
COPY --from=builder /out/aliyun-backup-exporter /usr/local/bin/aliyun-backup-exporter
USER nonroot:nonroot
EXPOSE 9817
ENTRYPOINT ["/usr/local/bin/aliyun-backup-exporter"]
