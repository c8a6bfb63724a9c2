//! The recording writer thread ("rec-writer", on the control core): owns
//! every open recording file, appends the PCM the shards send, patches the
//! WAV header at most once a second per file so a crash loses at most the
//! last second of header coverage, and syncs on close. Also the on-disk
//! layout (`root/YYYYMMDD/<call id>.wav`) and the start-up repair sweep.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::wav;

/// How often a file's header is brought up to date while it is written.
const PATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Longest file name stem taken from a call id.
const MAX_STEM: usize = 200;

/// A command for the writer thread. `id` is any number unique among the
/// open recordings (e.g. the call's internal id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecCmd {
    /// Create the file (and its parent directories) with an empty header.
    Open { id: u64, path: PathBuf },
    /// Append interleaved s16le stereo frames.
    Append { id: u64, pcm: Vec<u8> },
    /// Patch the header, sync and close.
    Close { id: u64 },
}

struct OpenFile {
    file: File,
    path: PathBuf,
    /// PCM bytes written after the header.
    data_len: u64,
    /// Data length the header says.
    patched_len: u64,
    last_patch: Instant,
    /// A write failed: stop writing (the header then covers what is known
    /// to be on disk).
    broken: bool,
    truncated: bool,
}

impl OpenFile {
    fn patch(&mut self) {
        let len = self.data_len / wav::FRAME_BYTES * wav::FRAME_BYTES;
        self.last_patch = Instant::now();
        if len == self.patched_len {
            return;
        }
        match wav::patch_sizes(&self.file, len as u32) {
            Ok(()) => self.patched_len = len,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "recording: header update failed");
            }
        }
    }

    fn append(&mut self, pcm: &[u8]) {
        if self.broken {
            return;
        }
        let room = wav::MAX_DATA_LEN.saturating_sub(self.data_len);
        let take = (pcm.len() as u64).min(room) as usize;
        if take < pcm.len() && !self.truncated {
            self.truncated = true;
            tracing::warn!(path = %self.path.display(), "recording: WAV size limit reached, rest of the call not recorded");
        }
        if take == 0 {
            return;
        }
        match self.file.write_all(&pcm[..take]) {
            Ok(()) => self.data_len += take as u64,
            Err(e) => {
                self.broken = true;
                tracing::error!(path = %self.path.display(), error = %e, "recording: write failed, recording stops here");
                // Part of the chunk may be on disk: trust the file length.
                if let Ok(meta) = self.file.metadata() {
                    self.data_len = meta.len().saturating_sub(wav::HEADER_LEN);
                }
            }
        }
        if self.last_patch.elapsed() >= PATCH_INTERVAL {
            self.patch();
        }
    }

    fn close(mut self) {
        self.patch();
        if let Err(e) = self.file.sync_data() {
            tracing::error!(path = %self.path.display(), error = %e, "recording: sync failed");
        }
        tracing::debug!(path = %self.path.display(), bytes = self.data_len, "recording closed");
    }
}

#[derive(Default)]
struct Writer {
    files: HashMap<u64, OpenFile>,
    /// Ids whose open failed: their appends are dropped quietly.
    failed: HashSet<u64>,
}

impl Writer {
    fn handle(&mut self, cmd: RecCmd) {
        match cmd {
            RecCmd::Open { id, path } => self.open(id, path),
            RecCmd::Append { id, pcm } => match self.files.get_mut(&id) {
                Some(f) => f.append(&pcm),
                None if self.failed.contains(&id) => {}
                None => tracing::debug!(id, "recording: append to a recording that is not open"),
            },
            RecCmd::Close { id } => {
                self.failed.remove(&id);
                if let Some(f) = self.files.remove(&id) {
                    f.close();
                }
            }
        }
    }

    fn open(&mut self, id: u64, path: PathBuf) {
        if let Some(old) = self.files.remove(&id) {
            tracing::warn!(id, path = %old.path.display(), "recording: reopened without close");
            old.close();
        }
        self.failed.remove(&id);
        match create(&path) {
            Ok((file, path)) => {
                self.files.insert(
                    id,
                    OpenFile {
                        file,
                        path,
                        data_len: 0,
                        patched_len: 0,
                        last_patch: Instant::now(),
                        broken: false,
                        truncated: false,
                    },
                );
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "recording: cannot create file");
                self.failed.insert(id);
            }
        }
    }

    /// Brings stale headers up to date (files that got no append lately).
    fn sweep(&mut self) {
        for f in self.files.values_mut() {
            if f.data_len / wav::FRAME_BYTES * wav::FRAME_BYTES != f.patched_len
                && f.last_patch.elapsed() >= PATCH_INTERVAL
            {
                f.patch();
            }
        }
    }

    fn close_all(&mut self) {
        for (_, f) in self.files.drain() {
            f.close();
        }
    }
}

/// Creates the file with an empty header, never overwriting an existing
/// recording: if the name is taken, `<stem>-1.wav`, `<stem>-2.wav`, … are
/// tried. Returns the file and the path actually used.
fn create(path: &Path) -> io::Result<(File, PathBuf)> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    // Recordings are private: directories 0700, files 0600.
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut candidate = path.to_path_buf();
    for n in 1..=100u32 {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&candidate)
        {
            Ok(mut file) => {
                file.write_all(&wav::header(0))?;
                if n > 1 {
                    tracing::warn!(wanted = %path.display(), used = %candidate.display(), "recording: file name taken");
                }
                return Ok((file, candidate));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                candidate = path.with_file_name(format!("{stem}-{n}.wav"));
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free recording file name",
    ))
}

/// Starts the writer thread. It ends, closing whatever is still open, when
/// every sender of `rx` is dropped. Send with an unbounded channel (or
/// `try_send` and count drops): a chunk lost is a gap in the file.
pub fn spawn_writer(rx: Receiver<RecCmd>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rec-writer".into())
        .spawn(move || run(rx))
}

fn run(rx: Receiver<RecCmd>) {
    let mut writer = Writer::default();
    let mut last_sweep = Instant::now();
    loop {
        match rx.recv_timeout(PATCH_INTERVAL) {
            Ok(cmd) => writer.handle(cmd),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_sweep.elapsed() >= PATCH_INTERVAL {
            writer.sweep();
            last_sweep = Instant::now();
        }
    }
    writer.close_all();
}

/// `root/YYYYMMDD/<call id>.wav`, the date being the UTC day of `unix_ms`
/// and the call id reduced to a safe file name.
pub fn recording_path(root: &Path, unix_ms: u64, call_id: &str) -> PathBuf {
    let (y, m, d) = civil_from_days((unix_ms / 86_400_000) as i64);
    root.join(format!("{y:04}{m:02}{d:02}"))
        .join(format!("{}.wav", sanitize(call_id)))
}

/// Gregorian (year, month, day) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Keeps `[A-Za-z0-9._-@]`, turns anything else into `_`, and never yields
/// an empty name, a leading dot or `..`.
fn sanitize(call_id: &str) -> String {
    let mut out = String::with_capacity(call_id.len().min(MAX_STEM));
    let mut prev_dot = true; // a leading dot is replaced as well
    for c in call_id.chars().take(MAX_STEM) {
        let c = match c {
            '.' if prev_dot => '_',
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') => c,
            _ => '_',
        };
        prev_dot = c == '.';
        out.push(c);
    }
    if out.is_empty() || out.ends_with('.') {
        // Also keeps the ".wav" we append from making a "..".
        out.push('_');
    }
    out
}

/// Repairs the header of every `root/*/*.wav` (run at start-up, before the
/// writer opens anything). Returns how many files were fixed.
pub fn repair_dir(root: &Path) -> usize {
    let days = match fs::read_dir(root) {
        Ok(d) => d,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(root = %root.display(), error = %e, "recording: cannot scan for repair");
            }
            return 0;
        }
    };
    let mut fixed = 0;
    for day in days.flatten() {
        if !day.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(files) = fs::read_dir(day.path()) else {
            continue;
        };
        for entry in files.flatten() {
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_file())
                || path.extension().is_none_or(|e| e != "wav")
            {
                continue;
            }
            match wav::repair(&path) {
                Ok(true) => {
                    fixed += 1;
                    tracing::info!(path = %path.display(), "recording: header repaired after crash");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "recording: cannot repair");
                }
            }
        }
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;

    fn le32(b: &[u8]) -> u32 {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_781), (2026, 11, 24));
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    }

    #[test]
    fn path_layout_and_sanitizing() {
        let root = Path::new("/data/recordings");
        assert_eq!(
            recording_path(root, 1_795_478_400_000, "a84b4c76e66710@pc33.example.com"),
            PathBuf::from("/data/recordings/20261124/a84b4c76e66710@pc33.example.com.wav")
        );
        // Last millisecond of the previous day.
        assert_eq!(
            recording_path(root, 1_795_478_399_999, "x"),
            PathBuf::from("/data/recordings/20261123/x.wav")
        );
        let p = recording_path(root, 1_795_478_400_000, "../../etc/passwd");
        assert_eq!(
            p,
            PathBuf::from("/data/recordings/20261124/_._.__etc_passwd.wav")
        );
        assert!(p.starts_with("/data/recordings/20261124"));
        assert_eq!(sanitize(".."), "_._");
        assert_eq!(sanitize("."), "_");
        assert_eq!(sanitize("a."), "a._");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize("a...b"), "a._.b");
        assert_eq!(sanitize("a/b\\c d\0é"), "a_b_c_d__");
        assert_eq!(sanitize(&"x".repeat(1000)).len(), MAX_STEM);
        for id in ["..", "../..", "/", "a/../b", ".hidden", "x..y"] {
            let s = sanitize(id);
            assert!(
                !s.contains("..") && !s.starts_with('.') && !s.contains('/'),
                "{id} -> {s}"
            );
        }
    }

    #[test]
    fn recordings_and_their_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rec/20261124/a.wav");
        let (_f, used) = create(&path).expect("create");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&used), 0o600);
        assert_eq!(mode(&dir.path().join("rec")), 0o700);
        assert_eq!(mode(&dir.path().join("rec/20261124")), 0o700);
    }

    #[test]
    fn writer_open_append_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = recording_path(dir.path(), 1_795_478_400_000, "call-1@host");
        let (tx, rx) = unbounded();
        let handle = spawn_writer(rx).expect("spawn");
        let a: Vec<u8> = (0..4000u32).map(|i| (i * 7) as u8).collect();
        let b: Vec<u8> = (0..1200u32).map(|i| (i * 13 + 1) as u8).collect();
        tx.send(RecCmd::Open {
            id: 7,
            path: path.clone(),
        })
        .expect("send");
        tx.send(RecCmd::Append {
            id: 7,
            pcm: a.clone(),
        })
        .expect("send");
        tx.send(RecCmd::Append {
            id: 7,
            pcm: b.clone(),
        })
        .expect("send");
        tx.send(RecCmd::Close { id: 7 }).expect("send");
        // Commands for unknown ids are ignored.
        tx.send(RecCmd::Append {
            id: 99,
            pcm: vec![1; 8],
        })
        .expect("send");
        drop(tx);
        handle.join().expect("join");

        let bytes = fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 44 + 5200);
        assert_eq!(bytes[..44], wav::header(5200));
        assert_eq!(le32(&bytes[4..8]), 36 + 5200);
        assert_eq!(le32(&bytes[40..44]), 5200);
        assert_eq!(bytes[44..4044], a[..]);
        assert_eq!(bytes[4044..], b[..]);
        assert!(!wav::repair(&path).expect("repair"), "already consistent");
    }

    #[test]
    fn writer_never_overwrites_and_closes_on_disconnect() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("20260101").join("same.wav");
        let (tx, rx) = unbounded();
        let handle = spawn_writer(rx).expect("spawn");
        tx.send(RecCmd::Open {
            id: 1,
            path: path.clone(),
        })
        .expect("send");
        tx.send(RecCmd::Open {
            id: 2,
            path: path.clone(),
        })
        .expect("send");
        tx.send(RecCmd::Append {
            id: 1,
            pcm: vec![1; 40],
        })
        .expect("send");
        tx.send(RecCmd::Append {
            id: 2,
            pcm: vec![2; 80],
        })
        .expect("send");
        drop(tx); // no Close: the thread closes both on exit
        handle.join().expect("join");
        let first = fs::read(&path).expect("first");
        let second = fs::read(dir.path().join("20260101").join("same-1.wav")).expect("second");
        assert_eq!(first[..44], wav::header(40));
        assert_eq!(first[44..], [1u8; 40]);
        assert_eq!(second[..44], wav::header(80));
        assert_eq!(second[44..], [2u8; 80]);
    }

    #[test]
    fn header_catches_up_within_about_a_second_and_repair_finishes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d").join("live.wav");
        let (tx, rx) = unbounded();
        let handle = spawn_writer(rx).expect("spawn");
        let opened = Instant::now();
        tx.send(RecCmd::Open {
            id: 3,
            path: path.clone(),
        })
        .expect("send");
        tx.send(RecCmd::Append {
            id: 3,
            pcm: vec![5; 400],
        })
        .expect("send");
        // The data reaches the file at once, the header only on the next patch.
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::metadata(&path).map_or(0, |m| m.len()) < 444 {
            assert!(Instant::now() < deadline, "data never written");
            std::thread::sleep(Duration::from_millis(10));
        }
        if opened.elapsed() < Duration::from_millis(500) {
            assert_eq!(
                le32(&fs::read(&path).expect("read")[40..44]),
                0,
                "patched too early"
            );
        }
        while le32(&fs::read(&path).expect("read")[40..44]) != 400 {
            assert!(Instant::now() < deadline, "header never patched while idle");
            std::thread::sleep(Duration::from_millis(50));
        }
        // A crash now (simulated: more data behind the writer's back) is
        // fixed by the start-up sweep.
        {
            let mut f = OpenOptions::new().append(true).open(&path).expect("open");
            f.write_all(&[6; 402]).expect("write");
        }
        assert_eq!(repair_dir(dir.path()), 1);
        let bytes = fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 44 + 800);
        assert_eq!(bytes[..44], wav::header(800));
        assert_eq!(repair_dir(dir.path()), 0);
        assert_eq!(repair_dir(&dir.path().join("missing")), 0);
        drop(tx);
        handle.join().expect("join");
    }
}
