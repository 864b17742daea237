//! Records the compiler that built the harness, for the reports' version
//! fields (`rustc -V` of the `RUSTC` cargo used).
fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WALRUS_BUILD_RUSTC={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
