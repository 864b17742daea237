//! A malformed setting stops the binaries before any work, with one line
//! that names the variable; `--help` documents the flags.

use std::process::Command;

fn bench(
    bin: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir(dir.path())
        .env("WALRUS_OUT_DIR", dir.path().join("out"))
        .env("WALRUS_DATA_DIR", dir.path().join("data"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    )
}

#[test]
fn malformed_values_fail_fast_with_one_line() {
    let write = env!("CARGO_BIN_EXE_write_benchmark");
    for (var, value) in [
        ("THREADS", "0"),
        ("FSYNC", "sometimes"),
        ("ENTRY_SIZE", "-1"),
    ] {
        let (code, stdout, stderr, dir) = bench(write, &[(var, value)], &[]);
        assert_eq!(code, 2, "{var}={value}: {stderr}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("error: invalid {var}={value}: ")),
            "{stderr}"
        );
        assert!(!dir.path().join("data").exists(), "no work started");
        assert!(!dir.path().join("out").exists(), "no results written");
    }
    let multi = env!("CARGO_BIN_EXE_walrus-bench");
    let (code, _, stderr, _) = bench(multi, &[], &["compare", "--threads", "0"]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: invalid --threads 0: "),
        "{stderr}"
    );
}

#[test]
fn help_lists_the_flags() {
    for bin in [
        env!("CARGO_BIN_EXE_write_benchmark"),
        env!("CARGO_BIN_EXE_read_benchmark"),
        env!("CARGO_BIN_EXE_scaling_benchmark"),
    ] {
        let (code, stdout, _, _) = bench(bin, &[], &["--help"]);
        assert_eq!(code, 0);
        for flag in [
            "--fsync",
            "--threads",
            "--duration",
            "--entry-size",
            "--store",
            "FSYNC",
        ] {
            assert!(
                stdout.contains(flag),
                "{bin} --help lacks {flag}:\n{stdout}"
            );
        }
    }
    let (code, stdout, _, _) = bench(env!("CARGO_BIN_EXE_walrus-bench"), &[], &["--help"]);
    assert_eq!(code, 0);
    for sub in ["write", "read", "scaling", "batch", "compare", "scenarios"] {
        assert!(stdout.contains(sub), "{stdout}");
    }
}
