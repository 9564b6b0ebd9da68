//! Small file helpers shared by checks, actions and the healer: durable writes and reads of
//! one number from /proc. A neutral module so that none of them imports another's internals.

use std::io::Write;
use std::path::Path;

/// One unsigned integer from a /proc/sys file: `Ok(None)` when the file does not exist.
pub fn read_proc_u64(path: &Path) -> Result<Option<u64>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| format!("{}: {e}: {:?}", path.display(), text.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes `bytes` to `path` crash-safely: temp file, fsync, rename, fsync of the directory.
pub fn write_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durable_write_replaces_and_proc_reads_parse() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n");
        write_durable(&p, b"1").unwrap();
        write_durable(&p, b" 42\n").unwrap();
        assert_eq!(read_proc_u64(&p).unwrap(), Some(42));
        assert!(!p.with_extension("tmp").exists());
        assert_eq!(read_proc_u64(&dir.path().join("missing")).unwrap(), None);
    }
}
