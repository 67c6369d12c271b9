//! The log writer: a thread of its own that makes the Ready loop's log
//! writes durable while the loop goes on (raft-rs's asynchronous ready:
//! `advance_append_async`, then `on_persist_ready` when this thread says so).
//!
//! Group commit: the writer takes every batch queued while its previous
//! fsync ran and writes them with one `write` and one `fdatasync`. Then, in
//! order, it sends the messages those batches held back (a follower's
//! acknowledgements, votes: raft-rs's "persisted messages") straight to the
//! transport, and tells the loop the number of the last Ready it covered.
//! A leader's appends are not held: the loop sends them before handing its
//! own copy here, so followers write while the leader does (Raft thesis
//! §10.2.1).
//!
//! A write failure stops the writer and the loop with it: after a failed
//! fsync nothing about the file can be trusted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use protobuf::Message as PbMessage;
use raft::prelude::{Entry, HardState, Message};

use crate::at_rest::{AtRest, Row};
use crate::node::Input;
use crate::segment_log::SegmentLog;
use crate::transport::Outbox;
use crate::write_stats::{Stage, WriteStats};
use crate::MetaError;

/// One Ready's share of the log.
pub struct Batch {
    /// The Ready's number (raft-rs counts them).
    pub number: u64,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    /// Must reach the disk before `messages` leave or the loop is told.
    pub sync: bool,
    /// Sent once everything up to this batch is durable.
    pub messages: Vec<Message>,
    pub queued: Instant,
}

enum Task {
    Append(Batch),
    /// Delete segments covered by a snapshot up to this index.
    Compact(u64),
    /// Replace the log with an empty one of a new generation.
    Reset {
        generation: u64,
        hard_state: HardState,
        done: Sender<Result<(), String>>,
    },
    /// Answered once every earlier task is done.
    Barrier(Sender<()>),
}

/// The Ready loop's handle on the writer thread.
pub struct LogWriter {
    tx: Option<Sender<Task>>,
    thread: Option<JoinHandle<()>>,
    /// Shared with the thread: the loop writes itself when the thread has
    /// nothing to do ([`LogWriter::write_now`]).
    log: Arc<Mutex<SegmentLog>>,
    links: Arc<WriterLinks>,
    /// Set once a write failed: nothing more is written.
    failed: Arc<AtomicBool>,
}

/// What the writer thread needs besides the log.
pub struct WriterLinks {
    pub at_rest: Arc<AtRest>,
    pub outbox: Outbox,
    /// The Ready loop's input: `Persisted` and `LogFailed` go there.
    pub notify: Sender<Input>,
    pub stats: Arc<WriteStats>,
}

impl LogWriter {
    pub fn start(log: SegmentLog, links: WriterLinks) -> Result<LogWriter, MetaError> {
        let (tx, rx) = channel();
        let log = Arc::new(Mutex::new(log));
        let links = Arc::new(links);
        let failed = Arc::new(AtomicBool::new(false));
        let (l, k, f) = (log.clone(), links.clone(), failed.clone());
        let thread = std::thread::Builder::new().name("raft-log".into()).spawn(move || {
            if let Err(e) = run(&l, rx, &k, &f) {
                tracing::error!(error = %e, "raft log write failed; stopping");
                let _ = k.notify.send(Input::LogFailed(e.to_string()));
            }
        })?;
        Ok(LogWriter { tx: Some(tx), thread: Some(thread), log, links, failed })
    }

    /// Write `batch` on the calling thread (only while the writer thread has
    /// nothing queued: batches must reach the disk in order). Its messages
    /// leave when it is durable; the caller tells raft-rs.
    pub fn write_now(&self, batch: Batch) -> Result<(), MetaError> {
        write_group(&self.log, vec![batch], &self.links, &self.failed)?;
        Ok(())
    }

    fn send(&self, task: Task) -> Result<(), MetaError> {
        let tx = self.tx.as_ref().ok_or_else(|| MetaError::Store("the log writer has stopped".into()))?;
        tx.send(task).map_err(|_| MetaError::Store("the log writer has stopped".into()))
    }

    pub fn append(&self, batch: Batch) -> Result<(), MetaError> {
        self.send(Task::Append(batch))
    }

    pub fn compact(&self, to: u64) -> Result<(), MetaError> {
        self.send(Task::Compact(to))
    }

    /// Wait until everything handed over so far is written.
    pub fn barrier(&self) -> Result<(), MetaError> {
        let (done, wait) = channel();
        self.send(Task::Barrier(done))?;
        wait.recv().map_err(|_| MetaError::Store("the log writer has stopped".into()))
    }

    /// Replace the log with an empty one of `generation`; returns once done.
    pub fn reset(&self, generation: u64, hard_state: HardState) -> Result<(), MetaError> {
        let (done, wait) = channel();
        self.send(Task::Reset { generation, hard_state, done })?;
        match wait.recv() {
            Ok(r) => r.map_err(MetaError::Store),
            Err(_) => Err(MetaError::Store("the log writer has stopped".into())),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(log: &Mutex<SegmentLog>, rx: Receiver<Task>, links: &WriterLinks, failed: &AtomicBool) -> Result<(), MetaError> {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut group = Vec::new();
        // Every batch already queued joins this write.
        while let Some(Task::Append(b)) = next {
            group.push(b);
            next = rx.try_recv().ok();
        }
        if !group.is_empty() {
            let number = write_group(log, group, links, failed)?;
            let _ = links.notify.send(Input::Persisted(number));
        }
        match next {
            None | Some(Task::Append(_)) => {}
            Some(Task::Compact(to)) => lock(log, failed)?.compact(to)?,
            Some(Task::Barrier(done)) => {
                let _ = done.send(());
            }
            Some(Task::Reset { generation, hard_state, done }) => {
                let r = hard_state
                    .write_to_bytes()
                    .map_err(MetaError::from)
                    .and_then(|hs| lock(log, failed)?.reset(generation, &hs));
                let error = r.as_ref().err().map(|e| e.to_string());
                let _ = done.send(r.map_err(|e| e.to_string()));
                if let Some(e) = error {
                    failed.store(true, Ordering::Relaxed);
                    return Err(MetaError::Store(e));
                }
            }
        }
    }
    Ok(())
}

/// The log, unless an earlier write failed.
fn lock<'a>(log: &'a Mutex<SegmentLog>, failed: &AtomicBool) -> Result<MutexGuard<'a, SegmentLog>, MetaError> {
    let guard = log.lock().unwrap_or_else(|e| e.into_inner());
    if failed.load(Ordering::Relaxed) {
        return Err(MetaError::Store("an earlier raft log write failed".into()));
    }
    Ok(guard)
}

/// Write a group of batches with one write and at most one fsync, then
/// release their messages; the number of the last.
fn write_group(
    log: &Mutex<SegmentLog>,
    group: Vec<Batch>,
    links: &WriterLinks,
    failed: &AtomicBool,
) -> Result<u64, MetaError> {
    let mut log = lock(log, failed)?;
    let started = Instant::now();
    let (mut entries, mut sync, mut number) = (0, false, 0);
    let mut messages = Vec::new();
    if let Some(first) = group.first() {
        links.stats.record(Stage::LogSyncWait, started.saturating_duration_since(first.queued));
    }
    for b in group {
        for e in &b.entries {
            let sealed = links.at_rest.seal(Row::entry(e.index, e.term), &e.write_to_bytes()?);
            log.push_entry(e.index, e.term, &sealed);
        }
        if let Some(hs) = &b.hard_state {
            log.push_hard_state(&hs.write_to_bytes()?);
        }
        entries += b.entries.len();
        sync |= b.sync;
        number = number.max(b.number);
        messages.extend(b.messages);
    }
    let fsyncs = log.flush(sync).inspect_err(|_| failed.store(true, Ordering::Relaxed))?;
    drop(log);
    if sync {
        links.stats.log_write(entries, started.elapsed(), fsyncs);
    }
    links.outbox.send(messages);
    Ok(number)
}
