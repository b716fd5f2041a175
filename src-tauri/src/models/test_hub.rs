//! A tiny stand-in for the Hugging Face Hub, for tests: it serves one repository from a folder on
//! loopback, with the two routes the downloader uses, `Range` support, the Hub's ETag headers,
//! and switches to misbehave (drop a connection mid-file, send corrupt bytes, demand a token).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
}

#[derive(Default)]
pub struct Behaviour {
    /// One-shot: after this many body bytes of the file, close the connection.
    pub drop_after: HashMap<String, usize>,
    /// Serve these files with one byte flipped (the listing keeps the true sha256).
    pub corrupt: HashSet<String>,
    /// Answer 401 unless `Authorization: Bearer <token>` is sent.
    pub require_token: Option<String>,
    /// Answer 200 with the whole file even when a Range is asked for.
    pub ignore_range: bool,
    /// List files by name only, so sizes and ETags must come from HEAD requests.
    pub bare_listing: bool,
    /// Announce this sha256 in `X-Linked-Etag` (the file "changed" since the listing).
    pub linked_etag: Option<String>,
    /// Answer LFS GETs with a 302 to `/cdn/<sha256>`, as the Hub sends them to its CDN.
    pub redirect_lfs: bool,
}

struct HubFile {
    name: String,
    bytes: Vec<u8>,
    lfs: bool,
}

struct State {
    repo: String,
    files: Vec<HubFile>,
    behaviour: Behaviour,
    log: Vec<Logged>,
}

pub struct TestHub {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl TestHub {
    /// Serves every file of `dir` (plus a README the downloader must skip) as `repo` at `main`.
    pub fn serve(repo: &str, dir: &Path) -> Self {
        let mut files = vec![HubFile {
            name: "README.md".into(),
            bytes: b"# not needed\n".to_vec(),
            lfs: false,
        }];
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let lfs = name.ends_with(".safetensors");
            files.push(HubFile {
                name,
                bytes: std::fs::read(&path).unwrap(),
                lfs,
            });
        }
        let state = Arc::new(Mutex::new(State {
            repo: repo.into(),
            files,
            behaviour: Behaviour::default(),
            log: Vec::new(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (st, stp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || handle(conn, &st));
            }
        });
        Self {
            endpoint: format!("http://{addr}"),
            state,
            stop,
            addr,
        }
    }

    pub fn behave(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.lock().unwrap().behaviour);
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn handle(mut conn: TcpStream, state: &Mutex<State>) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let path = target.split('?').next().unwrap_or("").to_string();
    let mut st = state.lock().unwrap();
    st.log.push(Logged {
        method: method.clone(),
        path: path.clone(),
        range: headers.get("range").cloned(),
    });
    if let Some(token) = &st.behaviour.require_token {
        if headers.get("authorization") != Some(&format!("Bearer {token}")) {
            return respond(&mut conn, 401, &[], b"{\"error\":\"gated\"}", None);
        }
    }
    let listing_path = format!("/api/models/{}/revision/main", st.repo);
    if method == "GET" && path == listing_path {
        let siblings: Vec<_> = st
            .files
            .iter()
            .map(|f| {
                let sha = sha256_hex(&f.bytes);
                if st.behaviour.bare_listing {
                    return serde_json::json!({ "rfilename": f.name });
                }
                let mut s = serde_json::json!({
                    "rfilename": f.name, "size": f.bytes.len(), "blobId": &sha[..40]
                });
                if f.lfs {
                    s["lfs"] = serde_json::json!({"sha256": sha, "size": f.bytes.len(), "pointerSize": 134});
                }
                s
            })
            .collect();
        let body = serde_json::json!({"id": st.repo, "sha": COMMIT, "siblings": siblings});
        return respond(&mut conn, 200, &[], body.to_string().as_bytes(), None);
    }
    let prefix = format!("/{}/resolve/{COMMIT}/", st.repo);
    let from_cdn = path.strip_prefix("/cdn/").and_then(|sha| {
        let f = st.files.iter().find(|f| sha256_hex(&f.bytes) == sha)?;
        Some(f.name.clone())
    });
    let Some(name) = path
        .strip_prefix(&prefix)
        .map(str::to_owned)
        .or(from_cdn.clone())
    else {
        return respond(&mut conn, 404, &[], b"not found", None);
    };
    let name = name.as_str();
    let Some(file) = st.files.iter().find(|f| f.name == name) else {
        return respond(&mut conn, 404, &[], b"no such file", None);
    };
    if st.behaviour.redirect_lfs && file.lfs && from_cdn.is_none() && method == "GET" {
        let location = format!("/cdn/{}", sha256_hex(&file.bytes));
        return respond(&mut conn, 302, &[("Location".into(), location)], b"", None);
    }
    let sha = sha256_hex(&file.bytes);
    let mut bytes = file.bytes.clone();
    if st.behaviour.corrupt.contains(name) {
        bytes[0] ^= 0xff;
    }
    let etag = if file.lfs {
        sha.clone()
    } else {
        sha[..40].to_string()
    };
    let mut hdrs = vec![
        ("ETag".to_string(), format!("\"{etag}\"")),
        ("X-Repo-Commit".to_string(), COMMIT.to_string()),
        ("Accept-Ranges".to_string(), "bytes".to_string()),
    ];
    if file.lfs && from_cdn.is_none() {
        let linked = st.behaviour.linked_etag.clone().unwrap_or(sha.clone());
        hdrs.push(("X-Linked-Etag".into(), format!("\"{linked}\"")));
        hdrs.push(("X-Linked-Size".into(), bytes.len().to_string()));
    }
    let len = bytes.len();
    let start = headers
        .get("range")
        .filter(|_| !st.behaviour.ignore_range)
        .and_then(|r| {
            r.strip_prefix("bytes=")?
                .strip_suffix('-')?
                .parse::<usize>()
                .ok()
        });
    let (status, body) = match start {
        Some(s) if s < len => {
            hdrs.push((
                "Content-Range".into(),
                format!("bytes {s}-{}/{len}", len - 1),
            ));
            (206, bytes[s..].to_vec())
        }
        Some(_) => return respond(&mut conn, 416, &[], b"", None),
        None => (200, bytes),
    };
    let cut = if method == "GET" {
        st.behaviour.drop_after.remove(name)
    } else {
        None
    };
    drop(st);
    if method == "HEAD" {
        let mut h = hdrs.clone();
        h.push(("Content-Length".into(), body.len().to_string()));
        return respond(&mut conn, status, &h, b"", Some(0));
    }
    respond(&mut conn, status, &hdrs, &body, cut);
}

/// Writes a response declaring `body.len()` bytes; with `cut`, sends only that many and closes.
fn respond(
    conn: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    cut: Option<usize>,
) {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    let has_len = headers.iter().any(|(k, _)| k == "Content-Length");
    if !has_len {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let n = cut.unwrap_or(body.len()).min(body.len());
    let _ = conn.write_all(&body[..n]);
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Both);
}
