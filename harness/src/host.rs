//! What the host is and what its disk can do, measured before a comparison
//! so the results can be read against the hardware's own limits.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::BenchError;
use crate::metrics::LatencyRecorder;

/// Most fdatasyncs the probe issues, and the longest it spends on them.
const FSYNC_PROBE_OPS: usize = 500;
const FSYNC_PROBE_TIME: Duration = Duration::from_secs(1);
/// Size of the buffered sequential write.
const SEQ_PROBE_BYTES: usize = 128 << 20;

/// Results of [`probe_disk`]. Field names are the keys of the host sidecar
/// (see [`write_host_json`]), which the report pages read.
#[derive(Clone, Debug, Serialize)]
pub struct DiskProbe {
    /// 4 KiB pwrite + fdatasync, per call.
    pub fdatasync_p50_us: f64,
    pub fdatasync_p99_us: f64,
    pub fdatasync_per_sec: f64,
    /// write() of 1 MiB chunks into the page cache.
    pub buffered_write_mb_per_sec: f64,
    /// The same bytes including the fdatasync that makes them durable.
    pub flushed_write_mb_per_sec: f64,
}

impl DiskProbe {
    pub fn describe(&self) -> String {
        format!(
            "fdatasync (4 KiB): p50 {:.0} us, p99 {:.0} us (~{:.0}/s); \
             buffered sequential write: {:.0} MiB/s ({:.0} MiB/s including the final fdatasync)",
            self.fdatasync_p50_us,
            self.fdatasync_p99_us,
            self.fdatasync_per_sec,
            self.buffered_write_mb_per_sec,
            self.flushed_write_mb_per_sec
        )
    }
}

/// Measures fdatasync latency and buffered sequential write bandwidth in
/// `dir` (the filesystem the stores will use), cleaning up after itself.
pub fn probe_disk(dir: &Path) -> Result<DiskProbe, BenchError> {
    let io = |what: &str, e| BenchError::io(format!("disk probe: {what} in {}", dir.display()), e);
    fs::create_dir_all(dir).map_err(|e| io("creating", e))?;
    let path = dir.join(format!(".walrus-probe-{}", std::process::id()));
    let result = (|| {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io("opening", e))?;
        let mut rec = LatencyRecorder::default();
        let block = [0xA5u8; 4096];
        let started = Instant::now();
        let mut n = 0;
        while n < FSYNC_PROBE_OPS && started.elapsed() < FSYNC_PROBE_TIME {
            let t = Instant::now();
            file.write_all_at(&block, (n * block.len()) as u64)
                .map_err(|e| io("writing", e))?;
            file.sync_data().map_err(|e| io("fdatasync", e))?;
            rec.record(t.elapsed());
            n += 1;
        }
        let fsync_elapsed = started.elapsed();
        let lat = rec.summary();
        drop(file);

        let mut file = File::create(&path).map_err(|e| io("recreating", e))?;
        let chunk = vec![0x5Au8; 1 << 20];
        let t = Instant::now();
        for _ in 0..SEQ_PROBE_BYTES / chunk.len() {
            file.write_all(&chunk).map_err(|e| io("writing", e))?;
        }
        let buffered = t.elapsed();
        file.sync_data().map_err(|e| io("fdatasync", e))?;
        let flushed = t.elapsed();
        let mib = (SEQ_PROBE_BYTES >> 20) as f64;
        Ok(DiskProbe {
            fdatasync_p50_us: lat.p50_us,
            fdatasync_p99_us: lat.p99_us,
            fdatasync_per_sec: n as f64 / fsync_elapsed.as_secs_f64(),
            buffered_write_mb_per_sec: mib / buffered.as_secs_f64(),
            flushed_write_mb_per_sec: mib / flushed.as_secs_f64(),
        })
    })();
    let _ = fs::remove_file(&path);
    result
}

/// The host facts beside a result: `<csv path minus .csv>.host.json`, so a
/// report page can show the hardware line and read throughput against the
/// disk's measured limits without parsing the Markdown.
pub fn write_host_json(
    csv_path: &Path,
    hardware: &str,
    disk: &DiskProbe,
) -> Result<PathBuf, BenchError> {
    #[derive(Serialize)]
    struct HostFacts<'a> {
        hardware: &'a str,
        #[serde(flatten)]
        disk: &'a DiskProbe,
    }
    let path = csv_path.with_extension("host.json");
    let json = serde_json::to_string_pretty(&HostFacts { hardware, disk })
        .map_err(|e| BenchError::Other(format!("encoding {}: {e}", path.display())))?;
    fs::write(&path, json + "\n")
        .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}

/// One line: CPU model and cores, memory, the disk and filesystem under
/// `dir`, and the kernel, as the guide asks published results to carry.
pub fn hardware_line(dir: &Path) -> String {
    let cpu = read("/proc/cpuinfo")
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = read("/proc/meminfo")
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or_else(|| "?".into(), |kb| format!("{:.0}", kb / (1024.0 * 1024.0)));
    let kernel = read("/proc/sys/kernel/osrelease")
        .map_or_else(|| "?".to_string(), |s| s.trim().to_string());
    format!(
        "CPU: {cpu} ({cores} cores), RAM: {mem_gib} GiB, disk: {}, kernel: Linux {kernel}",
        disk_description(dir)
    )
}

fn read(path: &str) -> Option<String> {
    fs::read_to_string(path).ok()
}

/// Block device, model, SSD/HDD and filesystem type behind `dir`.
fn disk_description(dir: &Path) -> String {
    let Ok(meta) = fs::metadata(dir) else {
        return "unknown".into();
    };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let sys = format!("/sys/dev/block/{major}:{minor}");
    let name = fs::canonicalize(&sys)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| format!("dev {major}:{minor}"));
    // A partition keeps model and queue on its parent device.
    let attr = |rel: &str| {
        read(&format!("{sys}/{rel}"))
            .or_else(|| read(&format!("{sys}/../{rel}")))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let model = attr("device/model").unwrap_or_default();
    let kind = match attr("queue/rotational").as_deref() {
        Some("0") => "non-rotational",
        Some("1") => "rotational",
        _ => "",
    };
    let fstype = filesystem_type(dir).unwrap_or_default();
    [name, model, kind.to_string(), fstype]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn filesystem_type(dir: &Path) -> Option<String> {
    let dir = fs::canonicalize(dir).ok()?;
    let mounts = read("/proc/mounts")?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mount, fstype) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(mount)
                .then(|| (mount.len(), fstype.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_line_names_cpu_disk_and_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let line = hardware_line(dir.path());
        assert!(line.contains("CPU: ") && line.contains("disk: ") && line.contains("kernel: "));
    }

    #[test]
    fn host_sidecar_sits_beside_the_csv_with_every_figure() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskProbe {
            fdatasync_p50_us: 212.0,
            fdatasync_p99_us: 3099.0,
            fdatasync_per_sec: 2646.0,
            buffered_write_mb_per_sec: 3331.0,
            flushed_write_mb_per_sec: 770.0,
        };
        let csv = dir.path().join("compare_20261126_052403.csv");
        let path = write_host_json(&csv, "CPU: \"x\" (2 cores)", &disk).unwrap();
        assert_eq!(path, dir.path().join("compare_20261126_052403.host.json"));
        let v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["hardware"], "CPU: \"x\" (2 cores)");
        assert_eq!(v["fdatasync_p50_us"], 212.0);
        assert_eq!(v["flushed_write_mb_per_sec"], 770.0);
        assert_eq!(v.as_object().unwrap().len(), 6);
    }
}
