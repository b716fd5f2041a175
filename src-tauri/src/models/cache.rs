//! The blob/snapshot layout of the Hugging Face cache on disk (see [`super::hub`]): what is
//! already there, linking a snapshot file to its blob, and dropping abandoned partials.

use std::fs::File;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::error::{DownloadError, Result};
use super::hub::{HubConfig, PlannedFile};

/// Deletes the `.incomplete` blobs of `repo` (the user abandoned the download). Returns the
/// number of bytes freed.
pub fn discard_partial(hub: &HubConfig, repo: &str) -> Result<u64> {
    let blobs = hub.repo_dir(repo).join("blobs");
    let entries = match std::fs::read_dir(&blobs) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(DownloadError::io(&blobs, e)),
    };
    let mut freed = 0;
    for entry in entries {
        let path = entry.map_err(|e| DownloadError::io(&blobs, e))?.path();
        if path.extension().is_some_and(|e| e == "incomplete") {
            freed += path.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&path).map_err(|e| DownloadError::io(&path, e))?;
        }
    }
    Ok(freed)
}

/// Bytes of `f` already in the cache: its size if the blob is complete, else the `.incomplete`
/// prefix (dropped if it is longer than the file can be).
pub(crate) fn cached_bytes(blobs: &Path, f: &PlannedFile) -> Result<u64> {
    let blob = blobs.join(&f.etag);
    if let Ok(meta) = blob.metadata() {
        if meta.len() == f.size {
            return Ok(f.size);
        }
        // A blob of the wrong size was not written by a verified download: fetch it again.
        std::fs::remove_file(&blob).map_err(|e| DownloadError::io(&blob, e))?;
    }
    let len = partial_len(blobs, f);
    if len > f.size {
        let part = blobs.join(format!("{}.incomplete", f.etag));
        std::fs::remove_file(&part).map_err(|e| DownloadError::io(&part, e))?;
        return Ok(0);
    }
    Ok(len)
}

pub(crate) fn partial_len(blobs: &Path, f: &PlannedFile) -> u64 {
    blobs
        .join(format!("{}.incomplete", f.etag))
        .metadata()
        .map_or(0, |m| m.len())
}

/// `snapshots/<commit>/<name>` -> `../../blobs/<etag>` (a copy where symlinks are unavailable).
pub(crate) fn link_snapshot(snapshot: &Path, name: &str, etag: &str) -> Result<()> {
    let link = snapshot.join(name);
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link).map_err(|e| DownloadError::io(&link, e))?;
    }
    let target = Path::new("..").join("..").join("blobs").join(etag);
    #[cfg(unix)]
    let linked = std::os::unix::fs::symlink(&target, &link);
    #[cfg(not(unix))]
    let linked = std::fs::hard_link(snapshot.join(&target), &link)
        .or_else(|_| std::fs::copy(snapshot.join(&target), &link).map(|_| ()));
    linked.map_err(|e| DownloadError::io(&link, e))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file, lowercase hex (what the Hub's LFS ETag holds).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}
