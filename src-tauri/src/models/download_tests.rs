//! Download tests against [`crate::models::test_hub::TestHub`] on loopback.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::models::test_hub::{TestHub, COMMIT};
use crate::models::validate::validate;

const REPO: &str = "Qwen/Tiny-VL";
const WEIGHTS: &str = "model.safetensors";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/dense-v5")
}

fn weights_len() -> u64 {
    std::fs::metadata(fixture().join(WEIGHTS)).unwrap().len()
}

struct Setup {
    hub: TestHub,
    cache: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Self {
            hub: TestHub::serve(REPO, &fixture()),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self, token: Option<&str>) -> HubConfig {
        HubConfig {
            endpoint: self.hub.endpoint.clone(),
            cache_dir: self.cache.path().to_path_buf(),
            token: token.map(str::to_owned),
        }
    }

    fn downloader(&self) -> Downloader {
        Downloader::new(self.config(None)).with_progress_interval(Duration::ZERO)
    }

    fn blobs(&self) -> PathBuf {
        self.config(None).repo_dir(REPO).join("blobs")
    }

    fn incomplete(&self) -> Vec<PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(self.blobs())
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "incomplete"));
        v
    }

    fn ranges_for(&self, file: &str) -> Vec<Option<String>> {
        self.hub
            .log()
            .into_iter()
            .filter(|l| l.method == "GET" && l.path.ends_with(&format!("/{file}")))
            .map(|l| l.range)
            .collect()
    }
}

fn run(d: &Downloader, cancel: &CancelToken) -> (Result<DownloadOutcome>, Vec<DownloadEvent>) {
    let mut events = Vec::new();
    let out = d.download(REPO, "main", cancel, &mut |e| events.push(e));
    (out, events)
}

fn assert_snapshot_matches_fixture(snapshot: &Path) {
    for name in [
        "config.json",
        "tokenizer.json",
        WEIGHTS,
        "chat_template.jinja",
    ] {
        let link = snapshot.join(name);
        assert!(
            link.symlink_metadata().unwrap().file_type().is_symlink(),
            "{name}"
        );
        assert_eq!(
            std::fs::read(&link).unwrap(),
            std::fs::read(fixture().join(name)).unwrap(),
            "{name}"
        );
    }
    assert!(!snapshot.join("README.md").exists(), "README is not needed");
    assert!(validate(snapshot).is_usable(), "{:?}", validate(snapshot));
}

#[test]
fn downloads_into_the_hf_cache_layout_with_progress() {
    let s = Setup::new();
    let (out, events) = run(&s.downloader(), &CancelToken::new());
    let snapshot = match out.unwrap() {
        DownloadOutcome::Complete { snapshot } => snapshot,
        other => panic!("{other:?}"),
    };
    let repo_dir = s.config(None).repo_dir(REPO);
    assert_eq!(snapshot, repo_dir.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        COMMIT
    );
    assert_snapshot_matches_fixture(&snapshot);
    assert!(s.incomplete().is_empty());

    // Events: Started, then per file progress + FileDone, then Finished.
    let DownloadEvent::Started {
        total_bytes,
        already_done,
        files,
        ..
    } = &events[0]
    else {
        panic!("{:?}", events[0]);
    };
    assert_eq!(*already_done, 0);
    let fixture_total: u64 = std::fs::read_dir(fixture())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(*total_bytes, fixture_total, "every fixture file, no README");
    assert_eq!(files.len(), 7);
    let progress: Vec<&Progress> = events
        .iter()
        .filter_map(|e| match e {
            DownloadEvent::Progress(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(
        progress.len() > files.len(),
        "several chunks of the weights"
    );
    assert!(progress
        .windows(2)
        .all(|w| w[0].total_done < w[1].total_done));
    let last = progress.last().unwrap();
    assert_eq!(last.total_done, *total_bytes);
    assert_eq!(last.eta_secs, Some(0.0));
    assert!(last.bytes_per_sec > 0.0);
    for f in files {
        let final_for_file = progress.iter().rev().find(|p| p.file == f.name).unwrap();
        assert_eq!(final_for_file.file_done, f.size, "{}", f.name);
    }
    let done = events
        .iter()
        .filter(|e| matches!(e, DownloadEvent::FileDone { .. }))
        .count();
    assert_eq!(done, files.len());
    assert!(matches!(
        events.last(),
        Some(DownloadEvent::Finished { .. })
    ));
    // The weights (LFS) are named by their sha256, like huggingface_hub does.
    let weights = files.iter().find(|f| f.name == WEIGHTS).unwrap();
    assert_eq!(
        Some(sha256_file(&s.blobs().join(&weights.etag)).unwrap()),
        weights.sha256
    );

    // A second run finds everything cached and transfers nothing.
    s.hub.clear_log();
    let (out, events) = run(&s.downloader(), &CancelToken::new());
    assert!(matches!(out.unwrap(), DownloadOutcome::Complete { .. }));
    assert!(
        matches!(events[0], DownloadEvent::Started { already_done, total_bytes, .. } if already_done == total_bytes)
    );
    assert!(
        s.hub.log().iter().all(|l| l.path.starts_with("/api/")),
        "{:?}",
        s.hub.log()
    );
}

#[test]
fn a_dropped_connection_is_resumed_with_a_range_request() {
    let s = Setup::new();
    let cut = 300_000;
    s.hub.behave(|b| {
        b.drop_after.insert(WEIGHTS.into(), cut);
    });
    let (out, _) = run(&s.downloader(), &CancelToken::new());
    let DownloadOutcome::Complete { snapshot } = out.unwrap() else {
        panic!()
    };
    assert_snapshot_matches_fixture(&snapshot);
    assert_eq!(s.ranges_for(WEIGHTS), [None, Some(format!("bytes={cut}-"))]);
}

#[test]
fn cancel_keeps_the_partial_and_a_new_downloader_resumes_it() {
    let s = Setup::new();
    let cancel = CancelToken::new();
    let mut events = Vec::new();
    let token = cancel.clone();
    let out = s.downloader().download(REPO, "main", &cancel, &mut |e| {
        if let DownloadEvent::Progress(p) = &e {
            if p.file == WEIGHTS && p.file_done >= 200_000 {
                token.cancel();
            }
        }
        events.push(e);
    });
    let kept = match out.unwrap() {
        DownloadOutcome::Stopped { kept_bytes } => kept_bytes,
        other => panic!("{other:?}"),
    };
    assert!(kept >= 200_000 && kept < weights_len(), "{kept}");
    assert!(!events
        .iter()
        .any(|e| matches!(e, DownloadEvent::Finished { .. })));
    let partial = s.incomplete();
    assert_eq!(partial.len(), 1);
    assert_eq!(std::fs::metadata(&partial[0]).unwrap().len(), kept);

    // "After a restart": a fresh downloader picks the partial up.
    s.hub.clear_log();
    let (out, events) = run(&s.downloader(), &CancelToken::new());
    let DownloadOutcome::Complete { snapshot } = out.unwrap() else {
        panic!()
    };
    assert_snapshot_matches_fixture(&snapshot);
    assert_eq!(s.ranges_for(WEIGHTS), [Some(format!("bytes={kept}-"))]);
    let DownloadEvent::Started { already_done, .. } = &events[0] else {
        panic!()
    };
    assert!(*already_done >= kept);
}

#[test]
fn a_server_that_ignores_range_restarts_the_file() {
    let s = Setup::new();
    s.hub.behave(|b| {
        b.drop_after.insert(WEIGHTS.into(), 100_000);
        b.ignore_range = true;
    });
    let (out, _) = run(&s.downloader(), &CancelToken::new());
    let DownloadOutcome::Complete { snapshot } = out.unwrap() else {
        panic!()
    };
    assert_snapshot_matches_fixture(&snapshot);
}

#[test]
fn a_checksum_mismatch_is_rejected_and_the_blob_deleted() {
    let s = Setup::new();
    s.hub.behave(|b| {
        b.corrupt.insert(WEIGHTS.into());
    });
    let (out, events) = run(&s.downloader(), &CancelToken::new());
    let err = out.unwrap_err();
    assert_eq!(err.kind(), "checksumMismatch", "{err}");
    assert!(err.to_string().contains(WEIGHTS), "{err}");
    let DownloadEvent::Started { files, .. } = &events[0] else {
        panic!()
    };
    let weights = files.iter().find(|f| f.name == WEIGHTS).unwrap();
    assert!(!s.blobs().join(&weights.etag).exists());
    assert!(s.incomplete().is_empty(), "the corrupt partial is gone");
    let snapshot = s.config(None).repo_dir(REPO).join("snapshots").join(COMMIT);
    assert!(!snapshot.join(WEIGHTS).exists());

    // Once the server is fixed, the same cache completes.
    s.hub.behave(|b| b.corrupt.clear());
    let (out, _) = run(&s.downloader(), &CancelToken::new());
    assert!(matches!(out.unwrap(), DownloadOutcome::Complete { .. }));
}

struct FixedFreeSpace(u64);

impl FreeSpace for FixedFreeSpace {
    fn available(&self, _: &Path) -> std::io::Result<u64> {
        Ok(self.0)
    }
}

#[test]
fn not_enough_disk_space_stops_before_writing_anything() {
    let s = Setup::new();
    let d = s
        .downloader()
        .with_free_space(Arc::new(FixedFreeSpace(500_000)));
    let (out, events) = run(&d, &CancelToken::new());
    let err = out.unwrap_err();
    assert_eq!(err.kind(), "notEnoughSpace");
    let msg = err.to_string();
    assert!(
        msg.contains("not enough disk space") && msg.contains("500.0 kB"),
        "{msg}"
    );
    assert!(events.is_empty());
    assert_eq!(
        std::fs::read_dir(s.blobs()).unwrap().count(),
        0,
        "nothing written"
    );
    assert!(s.ranges_for(WEIGHTS).is_empty());

    // Only what is still missing counts: with most of the weights cached as a partial, the
    // same free space is enough.
    let plan = d.plan(REPO, "main").unwrap();
    let weights = plan.files.iter().find(|f| f.name == WEIGHTS).unwrap();
    let bytes = std::fs::read(fixture().join(WEIGHTS)).unwrap();
    std::fs::write(
        s.blobs().join(format!("{}.incomplete", weights.etag)),
        &bytes[..bytes.len() - 100_000],
    )
    .unwrap();
    let (out, _) = run(&d, &CancelToken::new());
    assert!(matches!(out.unwrap(), DownloadOutcome::Complete { .. }));
}

#[test]
fn an_unreachable_hub_says_so() {
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = tempfile::tempdir().unwrap();
    let d = Downloader::new(HubConfig {
        endpoint: format!("http://127.0.0.1:{port}"),
        cache_dir: cache.path().into(),
        token: None,
    });
    let mut events = Vec::new();
    let err = d
        .download(REPO, "main", &CancelToken::new(), &mut |e| events.push(e))
        .unwrap_err();
    assert_eq!(err.kind(), "offline");
    assert!(
        err.to_string().contains("cannot reach the model hub"),
        "{err}"
    );
    assert!(events.is_empty());
}

#[test]
fn gated_repos_need_a_token_and_unknown_repos_are_not_found() {
    let s = Setup::new();
    s.hub.behave(|b| b.require_token = Some("hf_secret".into()));
    let err = s.downloader().plan(REPO, "main").unwrap_err();
    assert_eq!(err.kind(), "unauthorized");
    assert!(err.to_string().contains("HF_TOKEN"), "{err}");
    let err = Downloader::new(s.config(Some("hf_wrong")))
        .plan(REPO, "main")
        .unwrap_err();
    assert!(err.to_string().contains("token was rejected"), "{err}");
    let d = Downloader::new(s.config(Some("hf_secret")));
    let (out, _) = run(&d, &CancelToken::new());
    assert!(matches!(out.unwrap(), DownloadOutcome::Complete { .. }));

    let err = d.plan("Qwen/Nope", "main").unwrap_err();
    assert_eq!(err.kind(), "notFound");
    assert!(err.to_string().contains("Qwen/Nope"), "{err}");
}

#[test]
fn discarding_a_partial_frees_it() {
    let s = Setup::new();
    let cancel = CancelToken::new();
    let token = cancel.clone();
    let out = s.downloader().download(REPO, "main", &cancel, &mut |e| {
        if matches!(&e, DownloadEvent::Progress(p) if p.file == WEIGHTS) {
            token.cancel();
        }
    });
    let DownloadOutcome::Stopped { kept_bytes } = out.unwrap() else {
        panic!()
    };
    assert_eq!(discard_partial(&s.config(None), REPO).unwrap(), kept_bytes);
    assert!(s.incomplete().is_empty());
}

#[test]
fn events_serialise_for_a_channel() {
    let e = DownloadEvent::FileDone { file: "a".into() };
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        serde_json::json!({"event": "fileDone", "file": "a"})
    );
    let o = DownloadOutcome::Stopped { kept_bytes: 3 };
    assert_eq!(
        serde_json::to_value(&o).unwrap(),
        serde_json::json!({"status": "stopped", "keptBytes": 3})
    );
    fn is_send<T: Send + Sync>() {}
    is_send::<Downloader>();
}

#[test]
fn sizes_and_etags_come_from_head_when_the_listing_lacks_them() {
    let s = Setup::new();
    let full = s.downloader().plan(REPO, "main").unwrap();
    s.hub.behave(|b| b.bare_listing = true);
    s.hub.clear_log();
    let bare = s.downloader().plan(REPO, "main").unwrap();
    assert_eq!(
        bare, full,
        "HEAD gives the same sizes, blob names and sha256s"
    );
    let heads = s.hub.log().iter().filter(|l| l.method == "HEAD").count();
    assert_eq!(heads, full.files.len());
}

#[test]
fn a_file_changed_since_the_listing_is_refused() {
    let s = Setup::new();
    s.hub.behave(|b| b.linked_etag = Some("ab".repeat(32)));
    let (out, _) = run(&s.downloader(), &CancelToken::new());
    let err = out.unwrap_err();
    assert_eq!(err.kind(), "badResponse");
    assert!(err.to_string().contains("changed on the hub"), "{err}");
}

#[test]
fn lfs_redirects_keep_the_range() {
    let s = Setup::new();
    s.hub.behave(|b| {
        b.redirect_lfs = true;
        b.drop_after.insert(WEIGHTS.into(), 250_000);
    });
    let (out, _) = run(&s.downloader(), &CancelToken::new());
    let DownloadOutcome::Complete { snapshot } = out.unwrap() else {
        panic!()
    };
    assert_snapshot_matches_fixture(&snapshot);
    let cdn: Vec<_> = s
        .hub
        .log()
        .into_iter()
        .filter(|l| l.path.starts_with("/cdn/"))
        .map(|l| l.range)
        .collect();
    assert_eq!(cdn, [None, Some("bytes=250000-".to_string())]);
}

#[test]
fn server_supplied_names_cannot_leave_the_cache() {
    assert!(is_plain_segment("0123abcdef"));
    assert!(is_plain_segment("main"));
    for bad in ["", ".", "..", "a/b", "../x", "a\\b", "x y"] {
        assert!(!is_plain_segment(bad), "{bad:?}");
    }
}

/// A real ENOSPC from the kernel: the weights' `.incomplete` file is a link to `/dev/full`.
#[cfg(target_os = "linux")]
#[test]
fn a_disk_that_fills_up_mid_transfer_gives_a_clear_error_and_no_blob() {
    let s = Setup::new();
    let d = s.downloader();
    let plan = d.plan(REPO, "main").unwrap();
    let weights = plan.files.iter().find(|f| f.name == WEIGHTS).unwrap();
    std::fs::create_dir_all(s.blobs()).unwrap();
    let part = s.blobs().join(format!("{}.incomplete", weights.etag));
    std::os::unix::fs::symlink("/dev/full", &part).unwrap();

    let err = d
        .download_plan(&plan, &CancelToken::new(), &mut |_| {})
        .unwrap_err();
    assert_eq!(err.kind(), "diskFull", "{err}");
    assert!(err.to_string().contains("disk filled up"), "{err}");
    assert!(!s.blobs().join(&weights.etag).exists(), "no final blob");
    let snapshot = s.config(None).repo_dir(REPO).join("snapshots").join(COMMIT);
    assert!(!snapshot.join(WEIGHTS).exists());
}
