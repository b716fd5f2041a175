# Shared by the scripts in this folder (sourced, not run).
# The cargo target dir lives outside the clone so fresh clones (and CI) reuse earlier builds.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/glimpse/target}"
APP_BIN="$CARGO_TARGET_DIR/debug/glimpse-app"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# The real app: the front end built into ui/dist, then embedded by tauri's custom-protocol
# feature (without it the binary would load the dev server URL). Extra args go to cargo,
# e.g. `--features cuda`.
build_app() {
  say "Building the UI (ui/dist)"
  (cd "$ROOT/ui" && npm run --silent build -- --logLevel warn)
  say "Building the app ($APP_BIN)"
  # `--profile test`: the same profile `cargo test` builds dependencies with (test inherits dev, and
  # its output is target/debug too). Cargo hashes the profile's name into every artifact, so a dev
  # build here would compile all ~560 dependencies a second time after the rust tier; with the test
  # profile only tauri (custom-protocol), tauri-macros and the app binary are new.
  cargo build --manifest-path "$ROOT/Cargo.toml" --profile test -p glimpse-app --features tauri/custom-protocol "$@"
}
