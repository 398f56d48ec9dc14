# One image with every stockfleet binary; docker-compose.yml and deploy/
# pick the binary per container.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --workspace --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/stockfleet* /usr/local/bin/
USER 65534
ENV LOG_FORMAT=json
