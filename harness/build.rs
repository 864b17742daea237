//! Records the compiler and commit that built the harness, for the reports'
//! version fields (`rustc -V` of the `RUSTC` cargo used, `git rev-parse HEAD`).
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
    // The commit the binary was built from (a run's sidecar also records
    // HEAD when the run ended: they differ when the binary is stale).
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WALRUS_BUILD_COMMIT={commit}");
    for git_file in [
        "../.git/HEAD",
        "../.git/refs/heads/main",
        "../.git/packed-refs",
    ] {
        println!("cargo:rerun-if-changed={git_file}");
    }
}
