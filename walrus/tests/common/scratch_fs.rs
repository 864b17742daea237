//! Small scratch filesystems for the damage suites: a tmpfs and a
//! loop-mounted ext4, each on a fresh mount point, unmounted on drop. Both
//! need root (and a sandbox that allows mounts); without them the caller is
//! told why, in one line, and skips that part.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Mount {
    pub path: PathBuf,
    image: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs of `mib` MiB.
pub fn tmpfs(mib: u64) -> Result<Mount, String> {
    if !is_root() {
        return Err("not running as root: no tmpfs".into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("mnt");
    std::fs::create_dir(&path).map_err(|e| e.to_string())?;
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
        .arg(&path))?;
    Ok(Mount {
        path,
        image: None,
        _dir: dir,
    })
}

/// An ext4 filesystem of `mib` MiB in a file, loop-mounted.
pub fn loop_ext4(mib: u64) -> Result<Mount, String> {
    if !is_root() {
        return Err("not running as root: no loop-mounted ext4".into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let image = dir.path().join("fs.img");
    let file = std::fs::File::create(&image).map_err(|e| e.to_string())?;
    file.set_len(mib << 20).map_err(|e| e.to_string())?;
    drop(file);
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))?;
    let path = dir.path().join("mnt");
    std::fs::create_dir(&path).map_err(|e| e.to_string())?;
    run(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&path))?;
    Ok(Mount {
        path,
        image: Some(image),
        _dir: dir,
    })
}

impl Mount {
    /// Bytes in use on the filesystem.
    pub fn used_bytes(&self) -> u64 {
        used_bytes(&self.path)
    }
}

pub fn used_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid C string and `st` a valid out-pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs {}", path.display());
    (st.f_blocks - st.f_bfree) * st.f_frsize
}

impl Drop for Mount {
    fn drop(&mut self) {
        // A file the engine's background threads have not closed yet makes
        // the filesystem busy for a moment: retry, then detach it lazily.
        for _ in 0..50 {
            let done = Command::new("umount")
                .arg(&self.path)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if done {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = self.image.take();
    }
}
