//! Link layout of the `weir` binary (docs/performance.md, "Footprint").
//!
//! RocksDB's C++ puts each file's static initialiser (`.text.startup`) and its cold paths
//! (`.text.unlikely`) next to that file's code. Every process runs all the initialisers at start,
//! and the kernel maps code in 64 KB fault-around windows (whole large folios), so that spread
//! made nearly all of RocksDB's ~4.7 MB of code resident even in a TaskManager that never opens a
//! database. `-z keep-text-section-prefix` (lld and GNU ld) gathers those sections in one place.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo::rustc-link-arg-bin=weir=-Wl,-z,keep-text-section-prefix");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
