//! The call spool: an append-only local file of call events, each written and `fdatasync`ed
//! before the webhook answers, and replayed into the database by whoever reads it. Invariant 2:
//! an acknowledged call event is never lost (it is on disk before Twilio hears back) and never
//! counted twice: records carry a sequence number, the reader checkpoints what it stored, and
//! since a crash between storing and checkpointing replays a record (delivery is at least
//! once), the store must dedupe by sequence number.
//!
//! Layout: `<dir>/calls.spool` holds one JSON record per line; `<dir>/calls.spool.done` holds
//! the byte offset up to which records are stored elsewhere. A crash mid-write leaves a torn
//! last line without its newline: it was never acknowledged, so opening the spool cuts it off.
//! Once every record is acknowledged and they fill a MiB, the file is emptied
//! (`<dir>/calls.spool.seq` keeps the numbering rising across that).
//!
//! Readers (the replay) read without holding up appenders: the bytes before the file's length
//! do not change until the file is emptied, and a read that overlapped an emptying is done
//! again. Checkpoints are written outside the appenders' lock too.
//!
//! Group commit: appenders write their lines one at a time under a lock, then wait for an
//! `fdatasync` that covers their line. One appender at a time runs the sync, covering every
//! line written before it started; those that wrote meanwhile wait for it and, if it did not
//! cover them, the next. So concurrent calls share syncs instead of queueing for one each, and
//! no appender returns before a completed sync covers its record. (A crash can leave several
//! written but unsynced lines; none was acknowledged, and everything before a synced line is
//! synced too, since `fdatasync` covers the whole file.)

use std::collections::VecDeque;
use std::fs::File;

use crate::private_files::{create_private_dir, private_file_options};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, RwLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Clone)]
pub struct Record<T> {
    /// 1, 2, 3, ... over the spool's life (kept across compactions).
    pub seq: u64,
    pub event: T,
}

struct Inner {
    file: File,
    len: u64,
    next_seq: u64,
    done: u64,
    /// A failed write could not be cut off: a later line would follow a torn one (and be cut
    /// off with it at the next open), so nothing more is appended.
    damaged: bool,
    /// Bumped each time the file is emptied: until then the bytes before `len` never change,
    /// so readers read them without holding the lock.
    generation: u64,
    /// The unacknowledged records' sequence numbers and the offsets they end at, oldest first:
    /// an acknowledgement finds its offset here, and the backlog is counted here, instead of
    /// re-reading the file (which behind an outage made each 1 000-record replay batch re-parse
    /// everything still waiting).
    unacked: VecDeque<SeqEnd>,
}

/// A record and the file offset it ends at.
type Positioned<T> = (Record<T>, u64);

/// A record's sequence number and the file offset it ends at.
type SeqEnd = (u64, u64);

/// Where the unacknowledged records are, as of one moment.
#[derive(Clone, Copy)]
struct Region {
    done: u64,
    len: u64,
    generation: u64,
}

/// Acknowledged records are cut from the file once everything in it is acknowledged and they
/// fill this much: emptying the file holds up appenders for a sync, so it is not done for each
/// replay.
const COMPACT_AT: u64 = 1 << 20;

/// Which records completed syncs cover (group commit).
#[derive(Default)]
struct Syncs {
    /// Every record up to this sequence number is on disk.
    synced: u64,
    /// A sync meant to cover records up to this number failed: their appenders hear of it.
    failed: u64,
    /// An appender is running a sync now; the others wait for it.
    running: bool,
    /// Syncs run so far (how well appends share them).
    count: u64,
}

pub struct Spool<T> {
    path: PathBuf,
    done_path: PathBuf,
    inner: Mutex<Inner>,
    /// The last sequence number written to the file (every earlier one is written too).
    written: AtomicU64,
    /// The spool file again, for syncing without holding the writers' lock (replaced when
    /// `compact` renames a new file over the spool).
    sync_file: RwLock<File>,
    syncs: Mutex<Syncs>,
    sync_done: Condvar,
    /// One acknowledgement at a time (they write the checkpoint file).
    acknowledging: Mutex<()>,
    compact_at: u64,
    _event: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Spool<T> {
    /// Opens (or creates) the spool in `dir`, cutting off a torn last line.
    pub fn open(dir: &Path) -> io::Result<Self> {
        create_private_dir(dir)?;
        let path = dir.join("calls.spool");
        let done_path = dir.join("calls.spool.done");
        let mut file = private_file_options()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let (good_len, last_seq, positions) = scan(&mut file)?;
        if good_len < file.metadata()?.len() {
            tracing::warn!(path = %path.display(), "cutting off a torn spool record (never acknowledged)");
            file.set_len(good_len)?;
            file.sync_all()?;
        }
        let done = match std::fs::read_to_string(&done_path) {
            Ok(s) => s.trim().parse::<u64>().unwrap_or(0).min(good_len),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let next_seq = last_seq.max(read_seq_floor(dir)?) + 1;
        let unacked = positions
            .into_iter()
            .filter(|&(_, end)| end > done)
            .collect();
        let sync_file = RwLock::new(file.try_clone()?);
        Ok(Self {
            path,
            done_path,
            inner: Mutex::new(Inner {
                file,
                len: good_len,
                next_seq,
                done,
                damaged: false,
                generation: 0,
                unacked,
            }),
            written: AtomicU64::new(next_seq - 1),
            sync_file,
            syncs: Mutex::new(Syncs {
                synced: next_seq - 1,
                ..Syncs::default()
            }),
            sync_done: Condvar::new(),
            acknowledging: Mutex::new(()),
            compact_at: COMPACT_AT,
            _event: PhantomData,
        })
    }

    /// Appends an event and waits until it is on disk. Blocking: call from `spawn_blocking`.
    pub fn append(&self, event: &T) -> io::Result<u64> {
        let seq = self.write(event)?;
        self.wait_synced(seq)?;
        Ok(seq)
    }

    /// Writes the event's line (not yet synced) and returns its sequence number.
    fn write(&self, event: &T) -> io::Result<u64> {
        let mut inner = self.inner.lock().expect("lock");
        if inner.damaged {
            return Err(io::Error::other(
                "the spool could not cut off a failed write; restart to repair it",
            ));
        }
        let seq = inner.next_seq;
        let mut line = serde_json::to_vec(&Record { seq, event })?;
        line.push(b'\n');
        if let Err(e) = inner.file.write_all(&line) {
            // Part of the line may be in the file: cut it off, so the next line starts clean.
            let len = inner.len;
            if inner.file.set_len(len).is_err() {
                inner.damaged = true;
            }
            return Err(e);
        }
        inner.len += line.len() as u64;
        inner.next_seq += 1;
        let end = inner.len;
        inner.unacked.push_back((seq, end));
        // Under the lock, so `written` only rises and every record up to it is written.
        self.written.store(seq, Ordering::Release);
        Ok(seq)
    }

    /// Returns once a completed sync covers record `seq`, running the sync itself when none is
    /// under way.
    fn wait_synced(&self, seq: u64) -> io::Result<()> {
        let mut syncs = self.syncs.lock().expect("lock");
        loop {
            // A failure first: after a failed fdatasync, a later success proves nothing about
            // the lines the failed one was meant to cover.
            if syncs.failed >= seq {
                return Err(io::Error::other(
                    "the spool could not be synced to disk; the record may be lost",
                ));
            }
            if syncs.synced >= seq {
                return Ok(());
            }
            if syncs.running {
                syncs = self.sync_done.wait(syncs).expect("lock");
                continue;
            }
            syncs.running = true;
            let through = self.written.load(Ordering::Acquire);
            drop(syncs);
            let result = self.sync_file.read().expect("lock").sync_data();
            syncs = self.syncs.lock().expect("lock");
            syncs.running = false;
            syncs.count += 1;
            match &result {
                Ok(()) => syncs.synced = syncs.synced.max(through),
                Err(_) => syncs.failed = syncs.failed.max(through),
            }
            self.sync_done.notify_all();
            result?;
        }
    }

    /// The sequence number of the last record written (0: none since the spool was created).
    pub fn last_written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// How many syncs appends have run since the spool was opened (appends share them).
    pub fn syncs(&self) -> u64 {
        self.syncs.lock().expect("lock").count
    }

    /// Records not yet acknowledged, oldest first.
    pub fn pending(&self) -> io::Result<Vec<Record<T>>> {
        Ok(self
            .unacknowledged()?
            .0
            .into_iter()
            .map(|(record, _)| record)
            .collect())
    }

    /// Marks every record up to sequence number `through` as stored elsewhere. Sequence
    /// numbers, unlike file offsets, stay meaningful after the file is emptied, so a repeated or
    /// late acknowledgement is harmless. When nothing is left (and enough is acknowledged), the
    /// file is emptied. Appenders are held up only while the file is emptied.
    pub fn acknowledge(&self, through: u64) -> io::Result<()> {
        let _one_at_a_time = self.acknowledging.lock().expect("lock");
        let (last_seq, done, region) = {
            let inner = self.inner.lock().expect("lock");
            let Some(&(last_seq, done)) = inner
                .unacked
                .iter()
                .take_while(|&&(seq, _)| seq <= through)
                .last()
            else {
                return Ok(());
            };
            let region = Region {
                done: inner.done,
                len: inner.len,
                generation: inner.generation,
            };
            (last_seq, done, region)
        };
        if done == region.len && done >= self.compact_at {
            // The sequence floor keeps numbers rising across the emptying.
            write_atomically(
                &self.path.with_extension("spool.seq"),
                &last_seq.to_string(),
                true,
            )?;
            let mut inner = self.inner.lock().expect("lock");
            if inner.generation == region.generation && inner.len == done {
                inner.file.set_len(0)?;
                inner.file.sync_all()?;
                inner.len = 0;
                inner.done = 0;
                inner.generation += 1;
                inner.unacked.clear();
                // Still under the lock: no line is appended before the checkpoint says 0.
                return write_atomically(&self.done_path, "0", true);
            }
            // Lines were appended meanwhile: only move the checkpoint.
        }
        // Not synced: a checkpoint lost in a crash only replays records the store already
        // holds (it dedupes them), and the replay after each call pays no sync for it. (The
        // emptying above is synced: a stale offset into a refilled file would skip records.)
        write_atomically(&self.done_path, &done.to_string(), false)?;
        let mut inner = self.inner.lock().expect("lock");
        if inner.generation == region.generation {
            inner.done = inner.done.max(done);
            while inner
                .unacked
                .front()
                .is_some_and(|&(seq, _)| seq <= last_seq)
            {
                inner.unacked.pop_front();
            }
        }
        Ok(())
    }

    /// Cuts every acknowledged record from the file now, however few, keeping the ones still
    /// waiting, and returns the records cut (an erased caller's number must not wait on disk
    /// for `COMPACT_AT`). The records kept are copied to a new file, synced, and renamed over
    /// the spool after the checkpoint is set to 0: a crash before the rename leaves the old
    /// file read from its start, which only replays records the store holds already (it
    /// dedupes them); a crash after it leaves the new file and its checkpoint. Appenders wait
    /// meanwhile.
    pub fn compact(&self) -> io::Result<Vec<Record<T>>> {
        let _one_at_a_time = self.acknowledging.lock().expect("lock");
        let mut inner = self.inner.lock().expect("lock");
        if inner.done == 0 {
            return Ok(Vec::new());
        }
        let mut bytes = Vec::new();
        File::open(&self.path)?
            .take(inner.len)
            .read_to_end(&mut bytes)?;
        let done = inner.done;
        let (stored, kept) = bytes.split_at(done as usize);
        let cut = stored
            .split_inclusive(|&b| b == b'\n')
            .map(|line| {
                serde_json::from_slice(line)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            })
            .collect::<io::Result<Vec<Record<T>>>>()?;
        write_atomically(
            &self.path.with_extension("spool.seq"),
            &(inner.next_seq - 1).to_string(),
            true,
        )?;
        write_atomically(&self.done_path, "0", true)?;
        let fresh = self.path.with_extension("spool.compacting");
        {
            let mut f = private_file_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&fresh)?;
            f.write_all(kept)?;
            f.sync_all()?;
        }
        std::fs::rename(&fresh, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        inner.file = private_file_options()
            .read(true)
            .append(true)
            .open(&self.path)?;
        *self.sync_file.write().expect("lock") = inner.file.try_clone()?;
        inner.len = kept.len() as u64;
        inner.done = 0;
        inner.generation += 1;
        for (_, end) in inner.unacked.iter_mut() {
            *end -= done;
        }
        Ok(cut)
    }

    /// How many records wait to be acknowledged (no file read: `/health` asks on every probe).
    pub fn pending_count(&self) -> usize {
        self.inner.lock().expect("lock").unacked.len()
    }

    fn region(&self) -> Region {
        let inner = self.inner.lock().expect("lock");
        Region {
            done: inner.done,
            len: inner.len,
            generation: inner.generation,
        }
    }

    /// The unacknowledged records with the offset each ends at, read without holding up
    /// appenders; a read that overlapped an emptying of the file is done again.
    fn unacknowledged(&self) -> io::Result<(Vec<Positioned<T>>, Region)> {
        loop {
            let region = self.region();
            let records = self.read_region(region);
            if self.region().generation == region.generation {
                return Ok((records?, region));
            }
        }
    }

    /// The records between `done` and `len`, with the offset each ends at.
    fn read_region(&self, region: Region) -> io::Result<Vec<Positioned<T>>> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(region.done))?;
        let mut reader = BufReader::new(file.take(region.len - region.done));
        let mut out = Vec::new();
        let mut end = region.done;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            end += n as u64;
            let record: Record<T> = serde_json::from_slice(&line)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            out.push((record, end));
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        let inner = self.inner.lock().expect("lock");
        inner.len == inner.done
    }
}

/// The length of the well-formed prefix (complete lines), the last sequence number in it, and
/// each record's sequence number with the offset it ends at.
fn scan(file: &mut File) -> io::Result<(u64, u64, Vec<SeqEnd>)> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(&*file);
    let (mut good, mut last_seq) = (0u64, 0u64);
    let mut positions = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        #[derive(Deserialize)]
        struct Seq {
            seq: u64,
        }
        match serde_json::from_slice::<Seq>(&line) {
            Ok(s) => last_seq = s.seq,
            Err(_) => break,
        }
        good += n as u64;
        positions.push((last_seq, good));
    }
    Ok((good, last_seq, positions))
}

fn read_seq_floor(dir: &Path) -> io::Result<u64> {
    match std::fs::read_to_string(dir.join("calls.spool.seq")) {
        Ok(s) => Ok(s.trim().parse().unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Replaces a small file so that a crash leaves either the old or the new content.
/// With `durable`, the new content is also on disk when this returns.
fn write_atomically(path: &Path, content: &str, durable: bool) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = private_file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(content.as_bytes())?;
        if durable {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if durable && let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Clone)]
    struct Ev {
        call: String,
    }

    fn ev(c: &str) -> Ev {
        Ev { call: c.into() }
    }

    fn calls(p: &[Record<Ev>]) -> Vec<(u64, String)> {
        p.iter().map(|r| (r.seq, r.event.call.clone())).collect()
    }

    #[test]
    fn appended_events_survive_a_reopen_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.append(&ev("CA1")).unwrap(), 1);
        assert_eq!(spool.append(&ev("CA2")).unwrap(), 2);
        drop(spool); // a crash: nothing acknowledged

        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        let pending = spool.pending().unwrap();
        assert_eq!(calls(&pending), [(1, "CA1".into()), (2, "CA2".into())]);
        spool.acknowledge(pending[0].seq).unwrap();
        drop(spool);

        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        assert_eq!(
            calls(&spool.pending().unwrap()),
            [(2, "CA2".into())],
            "never replayed twice"
        );
        assert_eq!(spool.append(&ev("CA3")).unwrap(), 3);
    }

    #[test]
    fn the_backlog_is_counted_in_memory_and_agrees_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        for n in 1..=5 {
            spool.append(&ev(&format!("CA{n}"))).unwrap();
        }
        assert_eq!(spool.pending_count(), 5);
        spool.acknowledge(2).unwrap();
        assert_eq!(spool.pending_count(), 3);
        spool.acknowledge(2).unwrap(); // repeated: harmless
        spool.acknowledge(0).unwrap();
        assert_eq!(spool.pending_count(), 3);
        assert_eq!(spool.pending().unwrap().len(), spool.pending_count());
        drop(spool);

        // Reopened: counted from the file, after the checkpoint.
        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.pending_count(), 3);
        assert_eq!(calls(&spool.pending().unwrap())[0], (3, "CA3".into()));
        spool.append(&ev("CA6")).unwrap();
        spool.acknowledge(4).unwrap();
        assert_eq!(
            calls(&spool.pending().unwrap()),
            [(5, "CA5".into()), (6, "CA6".into())]
        );
        assert_eq!(spool.pending_count(), 2);
        spool.acknowledge(99).unwrap();
        assert_eq!(spool.pending_count(), 0);
        assert!(spool.is_empty());
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        spool.append(&ev("CA1")).unwrap();
        drop(spool);
        // A crash in the middle of the second write.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("calls.spool"))
            .unwrap();
        f.write_all(b"{\"seq\":2,\"event\":{\"ca").unwrap();
        drop(f);

        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        assert_eq!(calls(&spool.pending().unwrap()), [(1, "CA1".into())]);
        assert_eq!(spool.append(&ev("CA2")).unwrap(), 2);
        assert_eq!(spool.pending().unwrap().len(), 2);
    }

    #[test]
    fn acknowledging_everything_empties_the_file_but_not_the_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        spool.compact_at = 0;
        for c in ["CA1", "CA2", "CA3"] {
            spool.append(&ev(c)).unwrap();
        }
        let last = spool.pending().unwrap().last().unwrap().seq;
        spool.acknowledge(last).unwrap();
        assert!(spool.is_empty());
        assert_eq!(
            std::fs::metadata(dir.path().join("calls.spool"))
                .unwrap()
                .len(),
            0
        );
        drop(spool);
        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        assert!(spool.pending().unwrap().is_empty());
        assert_eq!(
            spool.append(&ev("CA4")).unwrap(),
            4,
            "sequence numbers keep rising"
        );
        // A late or repeated acknowledgement changes nothing.
        spool.acknowledge(3).unwrap();
        assert_eq!(calls(&spool.pending().unwrap()), [(4, "CA4".into())]);
    }

    #[test]
    fn compacting_cuts_the_stored_records_and_keeps_the_waiting_ones() {
        let dir = tempfile::tempdir().unwrap();
        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        for c in ["CA1", "CA2", "CA3"] {
            spool.append(&ev(c)).unwrap();
        }
        assert!(spool.compact().unwrap().is_empty(), "nothing stored yet");
        spool.acknowledge(2).unwrap();
        let cut = spool.compact().unwrap();
        assert_eq!(calls(&cut), [(1, "CA1".into()), (2, "CA2".into())]);
        let bytes = std::fs::read_to_string(dir.path().join("calls.spool")).unwrap();
        assert!(!bytes.contains("CA1") && !bytes.contains("CA2"), "{bytes}");
        assert_eq!(calls(&spool.pending().unwrap()), [(3, "CA3".into())]);
        assert_eq!(spool.append(&ev("CA4")).unwrap(), 4);
        spool.acknowledge(3).unwrap();
        assert_eq!(calls(&spool.pending().unwrap()), [(4, "CA4".into())]);
        drop(spool);

        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        assert_eq!(calls(&spool.pending().unwrap()), [(4, "CA4".into())]);
        spool.acknowledge(4).unwrap();
        assert_eq!(
            calls(&spool.compact().unwrap()),
            [(3, "CA3".into()), (4, "CA4".into())]
        );
        assert!(spool.is_empty());
        drop(spool);
        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        assert!(spool.pending().unwrap().is_empty());
        assert_eq!(spool.append(&ev("CA5")).unwrap(), 5, "numbering goes on");
    }

    #[test]
    fn concurrent_appends_all_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let spool: std::sync::Arc<Spool<Ev>> =
            std::sync::Arc::new(Spool::open(dir.path()).unwrap());
        let threads = 16;
        let each = 40;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let spool = spool.clone();
                std::thread::spawn(move || {
                    (0..each)
                        .map(|i| {
                            let seq = spool.append(&ev(&format!("CA{t}-{i}"))).unwrap();
                            // Returned only once a sync covered it.
                            assert!(spool.syncs.lock().unwrap().synced >= seq);
                            seq
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        let mut acknowledged: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        acknowledged.sort();
        let total = threads * each;
        assert_eq!(acknowledged, (1..=total as u64).collect::<Vec<_>>());
        drop(spool); // a crash right after the last answer

        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        let pending = spool.pending().unwrap();
        let seqs: Vec<u64> = pending.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());
        let distinct: std::collections::HashSet<_> =
            pending.iter().map(|r| r.event.call.clone()).collect();
        assert_eq!(distinct.len(), total);
        assert_eq!(spool.append(&ev("next")).unwrap(), total as u64 + 1);
    }

    #[test]
    fn a_reader_storing_while_appends_go_on_sees_every_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        spool.compact_at = 0; // empty the file whenever it can: the hardest case for readers
        let spool = std::sync::Arc::new(spool);
        let appending = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let reader = {
            let (spool, appending) = (spool.clone(), appending.clone());
            std::thread::spawn(move || {
                let mut stored = Vec::new();
                loop {
                    let still_appending = appending.load(Ordering::Acquire);
                    let pending = spool.pending().unwrap();
                    if let Some(last) = pending.last() {
                        spool.acknowledge(last.seq).unwrap();
                    } else if !still_appending {
                        return stored;
                    }
                    stored.extend(pending.iter().map(|r| r.seq));
                }
            })
        };
        let appenders: Vec<_> = (0..8)
            .map(|t| {
                let spool = spool.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        spool.append(&ev(&format!("CA{t}-{i}"))).unwrap();
                    }
                })
            })
            .collect();
        for a in appenders {
            a.join().unwrap();
        }
        appending.store(false, Ordering::Release);
        let mut stored = reader.join().unwrap();
        let in_order = stored.clone();
        stored.sort();
        assert_eq!(stored, in_order, "stored in sequence order");
        assert_eq!(stored, (1..=400).collect::<Vec<u64>>(), "each exactly once");
        drop(spool);
        let spool: Spool<Ev> = Spool::open(dir.path()).unwrap();
        assert!(spool.pending().unwrap().is_empty());
        assert_eq!(spool.append(&ev("next")).unwrap(), 401);
    }
}
