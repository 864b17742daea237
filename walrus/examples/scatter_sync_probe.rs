//! What the disk allows group commit at best: one thread, no locks, appends
//! 1 KiB to each of `n` places 4 MiB apart in one file (as `n` topics'
//! extents lie in a segment), then one fdatasync, in a loop. Appends per
//! second here are a ceiling for `n` threads on `n` topics under sync-each,
//! which also pay for thread hand-offs. Files are sparse, fallocated, or
//! written with zeros first, to show what block allocation costs the sync.
//!
//! ```text
//! cargo run --release -p walrus-wal --example scatter_sync_probe -- [dir] [rounds]
//! ```

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::Instant;

const FILE_BYTES: u64 = 64 << 20;
const SPACING: u64 = 4 << 20;

fn prepare(path: &Path, layout: &str) -> std::io::Result<File> {
    let _ = std::fs::remove_file(path);
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    f.set_len(FILE_BYTES)?;
    match layout {
        "fallocated" => {
            // SAFETY: a plain syscall on a descriptor we own.
            let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, FILE_BYTES as i64) };
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
        }
        "zeroed" => {
            let zeros = vec![0u8; 1 << 20];
            for at in (0..FILE_BYTES).step_by(zeros.len()) {
                f.write_all_at(&zeros, at)?;
            }
        }
        _ => {}
    }
    f.sync_all()?;
    Ok(f)
}

/// Appends per second with `places` appends `spacing` bytes apart (0: one
/// after another) per fdatasync.
fn run(path: &Path, layout: &str, places: u64, spacing: u64, rounds: u64) -> std::io::Result<f64> {
    let f = prepare(path, layout)?;
    let entry = vec![0x5a_u8; 1024];
    let mut offsets = vec![0u64; places as usize];
    let mut tail = 0u64;
    let t = Instant::now();
    for _ in 0..rounds {
        for (k, off) in offsets.iter_mut().enumerate() {
            if spacing == 0 {
                f.write_all_at(&entry, tail)?;
                tail += entry.len() as u64;
            } else {
                f.write_all_at(&entry, k as u64 * spacing + *off)?;
                *off += entry.len() as u64;
            }
        }
        f.sync_data()?;
    }
    let appends = (places * rounds) as f64;
    std::fs::remove_file(path)?;
    Ok(appends / t.elapsed().as_secs_f64())
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| ".".into());
    let rounds = args.next().and_then(|r| r.parse().ok()).unwrap_or(1500);
    let path = Path::new(&dir).join("scatter_sync_probe.tmp");
    println!(
        "appends/s, {rounds} rounds of (n appends 4 MiB apart, one fdatasync), alternated twice"
    );
    for places in [1, 4, 8] {
        let mut row = format!("n = {places}:");
        for layout in ["sparse", "fallocated", "zeroed"] {
            let a = run(&path, layout, places, SPACING, rounds)?;
            let b = run(&path, layout, places, SPACING, rounds)?;
            row += &format!("  {layout} {a:.0} / {b:.0}");
        }
        println!("{row}");
    }
    println!("appends/s, scattered (4 MiB apart) against one shared tail, fallocated, alternated");
    for places in [1, 4, 8] {
        let mut row = format!("n = {places}:");
        for _ in 0..2 {
            let scattered = run(&path, "fallocated", places, SPACING, rounds)?;
            let shared = run(&path, "fallocated", places, 0, rounds)?;
            row += &format!(
                "  scattered {scattered:.0}, shared tail {shared:.0} ({:.2}x)",
                shared / scattered
            );
        }
        println!("{row}");
    }
    Ok(())
}
