use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::attachments::AttachmentStore;

/// A clock that moves only when told to.
struct FakeClock {
    start: Instant,
    offset: Mutex<Duration>,
}

impl FakeClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        })
    }
    fn set_ms(&self, ms: u64) {
        *self.offset.lock().unwrap() = Duration::from_millis(ms);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap()
    }
}

/// Flushes happen only inside `append`, when the fake clock says so.
fn manual(interval_ms: u64, max_pending_bytes: usize) -> FlushPolicy {
    FlushPolicy {
        interval: Duration::from_millis(interval_ms),
        max_pending_bytes,
        background: false,
    }
}

fn setup() -> (tempfile::TempDir, History, ConversationId) {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::open(dir.path().join("history.sqlite3")).unwrap();
    let c = h
        .create_conversation(
            "Screenshot question",
            Some("qwen3-vl-2b"),
            &json!({"t": 0.7}),
        )
        .unwrap();
    (dir, h, c.id)
}

fn stored_content(h: &History, id: MessageId) -> (String, String, MessageStatus) {
    let m = h.message(id).unwrap();
    (m.content, m.thinking, m.status)
}

#[test]
fn crash_mid_answer_keeps_text_up_to_last_flush() {
    let (dir, mut h, c) = setup();
    h.add_user_message(c, "What is in this picture?", &[] as &[&str])
        .unwrap();
    let id = h
        .begin_assistant_message(c, "qwen3-vl-2b", &json!({}))
        .unwrap();
    let clock = FakeClock::new();
    let mut w = h
        .stream_writer_with(id, manual(500, 1 << 20), clock.clone())
        .unwrap();

    w.append("A cat ", "looking ").unwrap();
    clock.set_ms(499);
    w.append("on a ", "").unwrap();
    assert_eq!(w.flush_count(), 0, "nothing is due before the interval");
    clock.set_ms(500);
    w.append("sofa.", "closely").unwrap();
    assert_eq!(w.flush_count(), 1);
    clock.set_ms(700);
    w.append(" It is asleep", "").unwrap();
    // The process dies: the last delta was never flushed.
    w.die();
    drop(h);

    let h = History::open(dir.path().join("history.sqlite3")).unwrap();
    assert_eq!(h.recovered_on_open(), &[id]);
    assert_eq!(
        stored_content(&h, id),
        (
            "A cat on a sofa.".to_owned(),
            "looking closely".to_owned(),
            MessageStatus::Interrupted
        )
    );
    // A second open finds nothing left to recover.
    drop(h);
    let h = History::open(dir.path().join("history.sqlite3")).unwrap();
    assert!(h.recovered_on_open().is_empty());
}

#[test]
fn dropping_a_writer_without_finish_flushes_and_marks_interrupted() {
    let (_dir, mut h, c) = setup();
    let id = h.begin_assistant_message(c, "m", &json!({})).unwrap();
    let mut w = h
        .stream_writer_with(id, manual(500, 1 << 20), FakeClock::new())
        .unwrap();
    w.append("partial answer", "").unwrap();
    assert_eq!(w.flush_count(), 0);
    drop(w);
    assert_eq!(
        stored_content(&h, id),
        (
            "partial answer".to_owned(),
            String::new(),
            MessageStatus::Interrupted
        )
    );
}

#[test]
fn a_full_buffer_flushes_before_the_interval() {
    let (_dir, mut h, c) = setup();
    let id = h.begin_assistant_message(c, "m", &json!({})).unwrap();
    let mut w = h
        .stream_writer_with(id, manual(500, 8), FakeClock::new())
        .unwrap();
    w.append("1234", "567").unwrap();
    assert_eq!(w.flush_count(), 0);
    w.append("8", "").unwrap();
    assert_eq!(w.flush_count(), 1);
    assert_eq!(stored_content(&h, id).0, "12348");
    // Empty deltas neither buffer nor flush.
    w.append("", "").unwrap();
    assert_eq!(w.flush_count(), 1);
}

#[test]
fn the_deadline_thread_flushes_when_tokens_stop_coming() {
    let (_dir, mut h, c) = setup();
    let id = h.begin_assistant_message(c, "m", &json!({})).unwrap();
    let policy = FlushPolicy {
        interval: Duration::from_millis(20),
        max_pending_bytes: 1 << 20,
        background: true,
    };
    let mut w = h
        .stream_writer_with(id, policy, Arc::new(SystemClock))
        .unwrap();
    let appended = Instant::now();
    w.append("slow token", "").unwrap();
    // No further append: only the thread can flush. Wait for it with a generous deadline
    // (the check passes as soon as the flush lands; 5 s is only a hang guard).
    while stored_content(&h, id).0.is_empty() {
        assert!(
            appended.elapsed() < Duration::from_secs(5),
            "the deadline thread never flushed"
        );
        std::thread::yield_now();
    }
    assert!(appended.elapsed() >= Duration::from_millis(20));
    assert_eq!(w.flush_count(), 1);
    w.finish(MessageEnd::Complete, None).unwrap();
    assert_eq!(stored_content(&h, id).2, MessageStatus::Complete);
}

#[test]
fn finish_writes_the_rest_status_and_stats() {
    let (_dir, mut h, c) = setup();
    let before = h.conversation(c).unwrap().updated_at;
    let id = h
        .begin_assistant_message(c, "qwen3-vl-4b", &json!({"maxTokens": 64}))
        .unwrap();
    let mut w = h
        .stream_writer_with(id, manual(500, 1 << 20), FakeClock::new())
        .unwrap();
    w.append("Two boxes.", "count them").unwrap();
    let stats = json!({"tokens": 3, "tokensPerSecond": 41.5});
    w.finish(MessageEnd::Complete, Some(&stats)).unwrap();

    let m = h.message(id).unwrap();
    assert_eq!(m.role, Role::Assistant);
    assert_eq!(m.content, "Two boxes.");
    assert_eq!(m.thinking, "count them");
    assert_eq!(m.status, MessageStatus::Complete);
    assert_eq!(m.stats, Some(stats));
    assert_eq!(m.model_id.as_deref(), Some("qwen3-vl-4b"));
    assert_eq!(m.settings, Some(json!({"maxTokens": 64})));
    assert!(h.conversation(c).unwrap().updated_at >= before);

    // Ended messages cannot be ended or streamed into again.
    assert!(matches!(
        h.finish_assistant_message(id, MessageEnd::Complete, None),
        Err(AppError::MessageNotStreaming(_))
    ));
    assert!(matches!(
        h.stream_writer(id),
        Err(AppError::MessageNotStreaming(_))
    ));
}

#[test]
fn errors_are_recorded_with_their_reason() {
    let (_dir, mut h, c) = setup();
    let id = h.begin_assistant_message(c, "m", &json!({})).unwrap();
    h.finish_assistant_message(id, MessageEnd::Error("out of memory".into()), None)
        .unwrap();
    let m = h.message(id).unwrap();
    assert_eq!(m.status, MessageStatus::Error);
    assert_eq!(m.error.as_deref(), Some("out of memory"));
}

#[test]
fn writing_into_a_deleted_answer_fails_clearly() {
    let (_dir, mut h, c) = setup();
    let q = h.add_user_message(c, "q", &[] as &[&str]).unwrap();
    let id = h.begin_assistant_message(c, "m", &json!({})).unwrap();
    let mut w = h
        .stream_writer_with(id, manual(0, 1 << 20), FakeClock::new())
        .unwrap();
    w.append("first", "").unwrap();
    // Regenerate pressed while streaming: the answer is deleted under the writer.
    assert_eq!(h.truncate_after(q).unwrap(), 1);
    assert!(matches!(
        w.append("second", ""),
        Err(AppError::MessageNotStreaming(n)) if n == id.0
    ));
    assert!(matches!(
        w.finish(MessageEnd::Complete, None),
        Err(AppError::MessageNotFound(_))
    ));
}

#[test]
fn truncate_after_and_from() {
    let (_dir, mut h, c) = setup();
    let q1 = h.add_user_message(c, "q1", &[] as &[&str]).unwrap();
    let a1 = h.begin_assistant_message(c, "m", &json!({})).unwrap();
    h.finish_assistant_message(a1, MessageEnd::Complete, None)
        .unwrap();
    let q2 = h.add_user_message(c, "q2", &[] as &[&str]).unwrap();
    let a2 = h.begin_assistant_message(c, "m", &json!({})).unwrap();
    h.finish_assistant_message(a2, MessageEnd::Complete, None)
        .unwrap();
    let other = h.create_conversation("other", None, &json!({})).unwrap().id;
    let o1 = h.add_user_message(other, "o1", &[] as &[&str]).unwrap();

    // Regenerate the last answer: keep q2.
    assert_eq!(h.truncate_after(q2).unwrap(), 1);
    let ids: Vec<_> = h.messages(c).unwrap().iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![q1, a1, q2]);
    // Edit q1: it and everything after go.
    assert_eq!(h.truncate_from(q1).unwrap(), 3);
    assert!(h.messages(c).unwrap().is_empty());
    // Other conversations are untouched.
    assert_eq!(h.messages(other).unwrap()[0].id, o1);
    // New messages never reuse a deleted id (the UI may still hold it).
    let q3 = h.add_user_message(c, "q3", &[] as &[&str]).unwrap();
    assert!(q3 > o1);
    assert!(matches!(
        h.truncate_after(MessageId(9999)),
        Err(AppError::MessageNotFound(9999))
    ));
}

#[test]
fn search_matches_titles_and_message_text() {
    let (_dir, mut h, c) = setup();
    h.add_user_message(c, "Where is the SUBMIT button?", &[] as &[&str])
        .unwrap();
    let second = h
        .create_conversation("Holiday photos", None, &json!({}))
        .unwrap()
        .id;
    let a = h.begin_assistant_message(second, "m", &json!({})).unwrap();
    h.finish_assistant_message(a, MessageEnd::Complete, None)
        .unwrap();
    let third = h
        .create_conversation("Sales 50% up", None, &json!({}))
        .unwrap()
        .id;
    h.add_user_message(third, "日本語のスクリーンショット", &[] as &[&str])
        .unwrap();

    let ids = |q: Option<&str>| -> Vec<ConversationId> {
        h.list_conversations(q)
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect()
    };
    // Most recently updated first.
    assert_eq!(ids(None), vec![third, second, c]);
    assert_eq!(ids(Some("   ")), vec![third, second, c]);
    assert_eq!(
        ids(Some("submit")),
        vec![c],
        "message text, ASCII case folded"
    );
    assert_eq!(ids(Some("holiday")), vec![second], "titles");
    assert_eq!(
        ids(Some("スクリーン")),
        vec![third],
        "any script, substring"
    );
    assert_eq!(ids(Some("50%")), vec![third]);
    assert_eq!(
        ids(Some("5_%")),
        Vec::<ConversationId>::new(),
        "wildcards are literal"
    );
    assert_eq!(ids(Some("nothing like this")), Vec::<ConversationId>::new());
}

#[test]
fn rename_and_not_found_errors() {
    let (_dir, mut h, c) = setup();
    h.rename(c, "Renamed").unwrap();
    assert_eq!(h.conversation(c).unwrap().title, "Renamed");
    h.set_conversation_model(c, Some("qwen3-vl-8b"), &json!({"thinking": true}))
        .unwrap();
    let conv = h.conversation(c).unwrap();
    assert_eq!(conv.model_id.as_deref(), Some("qwen3-vl-8b"));
    assert_eq!(conv.settings, json!({"thinking": true}));

    let missing = ConversationId(424242);
    assert!(matches!(
        h.rename(missing, "x"),
        Err(AppError::ConversationNotFound(424242))
    ));
    assert!(matches!(
        h.messages(missing),
        Err(AppError::ConversationNotFound(_))
    ));
    assert!(matches!(
        h.delete(missing),
        Err(AppError::ConversationNotFound(_))
    ));
    assert!(matches!(
        h.add_user_message(missing, "x", &[] as &[&str]),
        Err(AppError::ConversationNotFound(_))
    ));
    assert!(matches!(
        h.begin_assistant_message(missing, "m", &json!({})),
        Err(AppError::ConversationNotFound(_))
    ));
}

/// A tiny valid PNG, different for each `seed`.
fn png(seed: u8, w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([seed, (x * 7) as u8, (y * 13) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn attachments_are_linked_in_order_and_unknown_ones_refused() {
    let (dir, mut h, c) = setup();
    let store = AttachmentStore::new(dir.path()).unwrap();
    let a = store.import_bytes(&png(1, 40, 30), Some("a.png")).unwrap();
    let b = store.import_bytes(&png(2, 30, 40), Some("b.png")).unwrap();
    h.record_attachment(&a).unwrap();
    h.record_attachment(&b).unwrap();
    // Recording the same content twice is fine.
    h.record_attachment(&a).unwrap();

    let m = h
        .add_user_message(c, "compare", &[&b.hash, &a.hash])
        .unwrap();
    let got = h.message(m).unwrap();
    assert_eq!(got.attachments, vec![b.clone(), a.clone()]);
    assert_eq!(
        h.messages(c).unwrap()[0].attachments,
        vec![b.clone(), a.clone()]
    );

    let before = h.messages(c).unwrap().len();
    assert!(matches!(
        h.add_user_message(c, "x", &[a.hash.as_str(), "feedface"]),
        Err(AppError::UnknownAttachment(hash)) if hash == "feedface"
    ));
    // The failed message was rolled back with its first link.
    assert_eq!(h.messages(c).unwrap().len(), before);
}

#[test]
fn delete_cascades_and_gc_removes_only_unreferenced_attachments() {
    let (dir, mut h, c) = setup();
    let store = AttachmentStore::new(dir.path()).unwrap();
    let shared = store
        .import_bytes(&png(1, 300, 200), Some("shared.png"))
        .unwrap();
    let only_c = store
        .import_bytes(&png(2, 300, 200), Some("only.png"))
        .unwrap();
    let stray = store
        .import_bytes(&png(3, 20, 20), Some("never sent.png"))
        .unwrap();
    for a in [&shared, &only_c] {
        h.record_attachment(a).unwrap();
    }
    h.add_user_message(c, "look", &[&shared.hash, &only_c.hash])
        .unwrap();
    let a = h.begin_assistant_message(c, "m", &json!({})).unwrap();
    h.finish_assistant_message(a, MessageEnd::Complete, None)
        .unwrap();
    let other = h.create_conversation("other", None, &json!({})).unwrap().id;
    h.add_user_message(other, "again", &[&shared.hash]).unwrap();

    // A grace period protects everything recent.
    let report = h
        .collect_garbage(&store, Duration::from_secs(3600))
        .unwrap();
    assert_eq!(report, GcReport::default());

    h.delete(c).unwrap();
    let count = |sql: &str| -> i64 { h.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM messages WHERE conversation_id = 1"),
        0
    );
    assert_eq!(count("SELECT count(*) FROM message_attachments"), 1);
    // Rows stay until collected: `shared` is still shown in `other`.
    assert_eq!(count("SELECT count(*) FROM attachments"), 2);

    let report = h.collect_garbage(&store, Duration::ZERO).unwrap();
    assert_eq!(report.rows_removed, 1);
    // only_c's file and thumbnail, stray's file and thumbnail.
    assert_eq!(report.files_removed, 4);
    assert!(report.bytes_freed > 0);
    for gone in [&only_c, &stray] {
        assert!(!store.resolve(&gone.stored_path).exists());
        assert!(!store
            .resolve(gone.thumbnail_path.as_ref().unwrap())
            .exists());
    }
    assert!(store.resolve(&shared.stored_path).exists());
    assert!(store
        .resolve(shared.thumbnail_path.as_ref().unwrap())
        .exists());
    assert_eq!(h.messages(other).unwrap()[0].attachments, vec![shared]);
}

#[test]
fn exports() {
    let (dir, mut h, c) = setup();
    let store = AttachmentStore::new(dir.path()).unwrap();
    let img = store
        .import_bytes(&png(9, 64, 48), Some("shot [1].png"))
        .unwrap();
    h.record_attachment(&img).unwrap();
    h.add_system_message(c, "Be brief.").unwrap();
    h.add_user_message(c, "Find the button.", &[&img.hash])
        .unwrap();
    let a = h
        .begin_assistant_message(c, "qwen3-vl-2b", &json!({}))
        .unwrap();
    let mut w = h
        .stream_writer_with(a, manual(500, 1 << 20), FakeClock::new())
        .unwrap();
    w.append(
        "```json\n[{\"bbox_2d\": [1, 2, 3, 4]}]\n```\n",
        "It is top left.\n",
    )
    .unwrap();
    w.finish(MessageEnd::Interrupted, None).unwrap();

    let conv = h.conversation(c).unwrap();
    let md = h.export_markdown(c).unwrap();
    let expected = format!(
        "# Screenshot question\n\n\
         _Exported from Glimpse. Started {}, model qwen3-vl-2b._\n\n\
         ## System\n\nBe brief.\n\n\
         ## User\n\n![shot \\[1\\].png]({}) (image, 64×48)\n\nFind the button.\n\n\
         ## Assistant\n\n\
         <details><summary>Thinking</summary>\n\nIt is top left.\n\n</details>\n\n\
         ```json\n[{{\"bbox_2d\": [1, 2, 3, 4]}}]\n```\n\n\
         _(interrupted)_\n",
        export::iso_utc(conv.created_at),
        img.stored_path
    );
    assert_eq!(md, expected);

    let v: serde_json::Value = serde_json::from_str(&h.export_json(c).unwrap()).unwrap();
    assert_eq!(v["format"], "glimpse-conversation");
    assert_eq!(v["version"], 1);
    assert_eq!(v["conversation"]["title"], "Screenshot question");
    assert_eq!(v["conversation"]["settings"], json!({"t": 0.7}));
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["role"], "system");
    assert_eq!(msgs[1]["attachments"][0]["hash"], img.hash.as_str());
    assert_eq!(msgs[1]["attachments"][0]["width"], 64);
    assert_eq!(msgs[2]["status"], "interrupted");
    assert_eq!(msgs[2]["thinking"], "It is top left.\n");
    assert_eq!(msgs[2]["modelId"], "qwen3-vl-2b");
}

/// A database from the first release, written with the v1 SQL directly (not through this
/// code), including an answer a crash left streaming, opens with everything readable.
#[test]
fn a_v1_database_opens_and_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("testdata/schema_v1.sql"))
            .unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO conversations VALUES (1, 'Old chat', 1000, 2000, 'qwen3-vl-2b', '{\"a\":1}');
             INSERT INTO attachments VALUES ('ab12', 'image', 'cat.png', 'image/png', 10, 4, 3,
                 NULL, 'attachments/ab/ab12.png', 'thumbs/ab/ab12.png', 1000, 1000);
             INSERT INTO messages VALUES (1, 1, 'user', 'what is this?', '', 'complete', NULL,
                 1000, NULL, NULL, NULL);
             INSERT INTO message_attachments VALUES (1, 0, 'ab12');
             INSERT INTO messages VALUES (2, 1, 'assistant', 'A ca', '', 'streaming', NULL,
                 1001, NULL, 'qwen3-vl-2b', '{}');",
        )
        .unwrap();
    }
    let h = History::open(&path).unwrap();
    let version: i64 = h
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, LATEST_VERSION);
    assert_eq!(h.recovered_on_open(), &[MessageId(2)]);
    let list = h.list_conversations(Some("what is")).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].settings, json!({"a": 1}));
    let msgs = h.messages(ConversationId(1)).unwrap();
    assert_eq!(
        msgs[0].attachments[0].original_name.as_deref(),
        Some("cat.png")
    );
    assert_eq!(msgs[0].attachments[0].width, Some(4));
    assert_eq!(
        (msgs[1].content.as_str(), msgs[1].status),
        ("A ca", MessageStatus::Interrupted)
    );
}

#[test]
fn foreign_keys_and_wal_are_on() {
    let (_dir, h, _c) = setup();
    let fk: i64 = h
        .conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    let mode: String = h
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!((fk, mode.as_str()), (1, "wal"));
}

/// Measures what a flush costs on this machine: `cargo test -p glimpse-app --release
/// measure_flush -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_flush_cost() {
    let (_dir, mut h, c) = setup();
    let id = h.begin_assistant_message(c, "m", &json!({})).unwrap();
    let mut w = h
        .stream_writer_with(id, manual(0, 1 << 20), FakeClock::new())
        .unwrap();
    // ~4 characters a token; interval 0 makes every append a flush.
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        w.append("word", "").unwrap();
    }
    let per = t.elapsed() / n;
    println!("flush of a 4-byte delta into a growing message (to 8 KB): {per:?} each");
    let t = Instant::now();
    for _ in 0..200 {
        w.append(&"x".repeat(200), "").unwrap();
    }
    println!(
        "flush of a 200-byte delta into a message of 8-48 KB: {:?} each",
        t.elapsed() / 200
    );
    w.finish(MessageEnd::Complete, None).unwrap();

    for i in 0..2000 {
        let conv = h
            .create_conversation(&format!("chat {i}"), None, &json!({}))
            .unwrap()
            .id;
        for _ in 0..5 {
            h.add_user_message(
                conv,
                &"lorem ipsum dolor sit amet ".repeat(40),
                &[] as &[&str],
            )
            .unwrap();
        }
    }
    let t = Instant::now();
    let found = h.list_conversations(Some("needle")).unwrap();
    println!(
        "search over 10 000 messages of ~1 KB: {:?} ({} found)",
        t.elapsed(),
        found.len()
    );
}

/// The app keeps `History` behind a `Mutex` in managed state, moves a `StreamWriter` to the
/// generation thread, and shares the `AttachmentStore` freely.
#[test]
fn thread_bounds_the_app_relies_on() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<History>();
    send::<StreamWriter>();
    send_sync::<std::sync::Mutex<History>>();
    send_sync::<AttachmentStore>();
}

#[test]
fn a_video_keeps_its_metadata_and_each_message_its_own_options() {
    let (dir, mut h, c) = setup();
    let store = AttachmentStore::new(dir.path()).unwrap();
    let clip = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/media/moving_104x72.mkv");
    let v = store.import_path(&clip).unwrap();
    h.record_attachment(&v).unwrap();
    let stored = h.attachment(&v.hash).unwrap();
    assert_eq!(stored, v);
    assert_eq!(
        (stored.width, stored.height, stored.duration_ms, stored.fps),
        (Some(104), Some(72), Some(2000), Some(10.0))
    );
    assert!(matches!(
        h.attachment("feedface"),
        Err(AppError::UnknownAttachment(hash)) if hash == "feedface"
    ));

    let range = crate::video::VideoRequest {
        start: Some(0.5),
        end: Some(1.5),
        ..Default::default()
    };
    let here = crate::video::VideoRequest {
        here: Some(1.25),
        ..Default::default()
    };
    let empty = crate::video::VideoRequest::default();
    let m1 = h
        .add_user_message_with(c, "when?", &[(v.hash.as_str(), Some(&range))])
        .unwrap();
    let m2 = h
        .add_user_message_with(c, "here?", &[(v.hash.as_str(), Some(&here))])
        .unwrap();
    let m3 = h
        .add_user_message_with(c, "plain", &[(v.hash.as_str(), Some(&empty))])
        .unwrap();
    let video_of = |id| h.message(id).unwrap().attachments[0].video.clone();
    assert_eq!(video_of(m1), Some(range.clone()));
    assert_eq!(video_of(m2), Some(here.clone()));
    // An empty request is the defaults: stored as none.
    assert_eq!(video_of(m3), None);
    let all = h.messages(c).unwrap();
    assert_eq!(
        all.iter()
            .map(|m| m.attachments[0].video.clone())
            .collect::<Vec<_>>(),
        [Some(range), Some(here), None]
    );
    // The store's own record carries no per-message options.
    assert_eq!(h.attachment(&v.hash).unwrap().video, None);
}

#[test]
fn video_frame_previews_live_and_go_with_their_video() {
    let (dir, mut h, c) = setup();
    let store = AttachmentStore::new(dir.path()).unwrap();
    let clip = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/media/moving_104x72.mkv");
    let v = store.import_path(&clip).unwrap();
    h.record_attachment(&v).unwrap();
    h.add_user_message(c, "when?", &[&v.hash]).unwrap();
    let preview = crate::video::preview_path(&dir.path().join("thumbs"), &v.hash, 1.0);
    crate::video::preview(&store.resolve(&v.stored_path), &preview, 1.0).unwrap();

    // Shown by a message: the video, its thumbnail and its previews all stay.
    let report = h.collect_garbage(&store, Duration::ZERO).unwrap();
    assert_eq!(report, GcReport::default());
    assert!(preview.exists());

    h.delete(c).unwrap();
    let report = h.collect_garbage(&store, Duration::ZERO).unwrap();
    assert_eq!(report.rows_removed, 1);
    // The video, its first-frame thumbnail and the preview.
    assert_eq!(report.files_removed, 3);
    assert!(!preview.exists());
    assert!(!store.resolve(&v.stored_path).exists());
}
