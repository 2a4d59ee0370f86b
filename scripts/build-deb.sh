#!/usr/bin/env bash
# Build the Debian package: target/debian/malspam-milter_VERSION-1_ARCH.deb.
#   1. one release build of the binary;
#   2. `malspam-milter generate-docs` writes the man pages, the shell
#      completions and the packaged config into target/deb-assets;
#   3. `cargo deb --no-build` packages them with the binary, the systemd
#      unit and the maintainer scripts in debian/ ([package.metadata.deb]
#      in Cargo.toml).
# Needs cargo-deb: cargo install cargo-deb --locked
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || {
    echo "build-deb: cargo-deb is not installed: cargo install cargo-deb --locked" >&2
    exit 1
}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked --bin malspam-milter
rm -rf "$target/deb-assets"
"$target/release/malspam-milter" generate-docs "$target/deb-assets" >/dev/null
rm -f "$target"/debian/malspam-milter_*.deb
cargo deb --no-build --locked
