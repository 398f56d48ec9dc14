# One image with every stockfleet binary; docker-compose.yml and deploy/
# pick the binary per container (command = binary name).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --workspace --bins \
 && mkdir /out \
 && find target/release -maxdepth 1 -type f -executable -name 'stockfleet*' -exec cp {} /out/ \; \
 && ls /out

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
# Every stockfleet* executable, without cargo's *.d dep-info files.
COPY --from=build /out/ /usr/local/bin/
# nobody:nogroup, numeric so that Kubernetes' runAsNonRoot can verify it.
USER 65534:65534
ENV LOG_FORMAT=json
# /healthz, /readyz and /metrics when HEALTH_ADDR=0.0.0.0:9100 (as compose
# and deploy/kubernetes set it; each binary's own default is 9101-9104).
EXPOSE 9100
CMD ["stockfleet", "--help"]
