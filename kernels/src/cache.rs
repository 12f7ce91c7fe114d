//! On-disk cache of compiled PTX, keyed by source text, compile options and NVRTC version, so a
//! run pays for NVRTC once per kernel change rather than once per process.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `$SWERL_KERNEL_CACHE`, else `$XDG_CACHE_HOME/swerl/kernels`, else `$HOME/.cache/swerl/kernels`.
/// None when none of these is set (then nothing is cached).
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("SWERL_KERNEL_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("swerl").join("kernels")))
        .or_else(|| var("HOME").map(|p| p.join(".cache").join("swerl").join("kernels")))
}

/// 64-bit FNV-1a: stable across Rust versions and platforms, unlike `DefaultHasher`.
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// File name of one cached PTX: `<kernel>-<arch>-<key>.ptx`.
pub fn entry_name(
    kernel: &str,
    arch: &str,
    source: &str,
    options: &[String],
    nvrtc: (i32, i32),
) -> String {
    let opts = options.join("\u{1}");
    let ver = format!("{}.{}", nvrtc.0, nvrtc.1);
    let key = fnv1a64(&[source.as_bytes(), opts.as_bytes(), ver.as_bytes()]);
    format!("{kernel}-{arch}-{key:016x}.ptx")
}

/// The cached text, if present and readable.
pub fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().filter(|s| !s.is_empty())
}

/// Writes `text` to `path` atomically: a temp file beside it, fsync, rename.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("ptx");
    // Unique per process and call: threads of one process may write the same entry at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes_with_every_input() {
        let o = vec!["--gpu-architecture=compute_90a".to_string()];
        let a = entry_name("rope", "compute_90a", "src", &o, (13, 0));
        assert!(a.starts_with("rope-compute_90a-") && a.ends_with(".ptx"));
        assert_eq!(a, entry_name("rope", "compute_90a", "src", &o, (13, 0)));
        assert_ne!(a, entry_name("rope", "compute_90a", "src2", &o, (13, 0)));
        assert_ne!(a, entry_name("rope", "compute_90a", "src", &o, (13, 1)));
        assert_ne!(a, entry_name("rope", "compute_90a", "src", &[], (13, 0)));
        assert_ne!(fnv1a64(&[b"ab", b"c"]), fnv1a64(&[b"a", b"bc"]));
    }

    #[test]
    fn atomic_write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("k.ptx");
        assert!(read(&p).is_none());
        write_atomic(&p, "// ptx").unwrap();
        assert_eq!(read(&p).as_deref(), Some("// ptx"));
        write_atomic(&p, "// ptx 2").unwrap();
        assert_eq!(read(&p).as_deref(), Some("// ptx 2"));
        let leftovers = std::fs::read_dir(p.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1);
    }

    #[test]
    fn concurrent_writers_of_one_entry_leave_one_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.ptx");
        let text: String = "x".repeat(1 << 20);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| write_atomic(&p, &text).unwrap());
            }
        });
        assert_eq!(read(&p).as_deref(), Some(text.as_str()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
