//! A dedicated thread that owns an io_uring ring and runs file I/O for
//! blocking callers.
//!
//! A caller sends an [`Op`] (which owns its file and buffer, so neither can
//! go away while the kernel uses it) over a channel, pokes an eventfd that
//! the ring always has a read armed on, and waits for the [`Done`] that hands
//! both back. The thread keeps up to `entries - 1` operations in flight,
//! resubmits the rest of a short transfer, and retries `EINTR`/`EAGAIN`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use io_uring::{opcode, squeue, types, IoUring, Probe};

use crate::aligned_buf::AlignedBuf;
use crate::DataError;

/// `user_data` of the eventfd read that wakes the thread.
const WAKE: u64 = u64::MAX;
/// The most one submission transfers; longer transfers continue.
const MAX_IO: usize = 1 << 30;

/// One file operation.
pub(crate) enum Op {
    /// Read from `offset` into `buf` until `want` bytes arrived, the buffer
    /// is full, or the file ends.
    Read { file: File, buf: AlignedBuf, offset: u64, want: usize },
    /// Write all of `buf` at `offset`.
    Write { file: File, buf: AlignedBuf, offset: u64 },
    /// fsync the file (data and metadata; `IORING_OP_FSYNC`).
    Fsync { file: File },
}

/// A finished [`Op`]: its file and buffer back, and the bytes transferred.
pub(crate) struct Done {
    pub(crate) file: File,
    pub(crate) buf: Option<AlignedBuf>,
    pub(crate) result: io::Result<usize>,
}

struct Request {
    op: Op,
    /// Bytes transferred so far.
    done: usize,
    reply: SyncSender<Done>,
}

/// Open a ring, explaining clearly when io_uring cannot be used here.
pub(crate) fn new_ring(entries: u32) -> Result<IoUring, DataError> {
    let ring = IoUring::new(entries).map_err(setup_error)?;
    let mut probe = Probe::new();
    let supported = ring.submitter().register_probe(&mut probe).is_ok()
        && [opcode::Read::CODE, opcode::Write::CODE, opcode::Fsync::CODE].into_iter().all(|c| probe.is_supported(c));
    if !supported {
        return Err(DataError::Config(
            "io_uring on this kernel lacks read, write or fsync (Linux 5.6 or later is needed); use the file store"
                .into(),
        ));
    }
    Ok(ring)
}

/// What a failed `io_uring_setup` means for the operator.
fn setup_error(e: io::Error) -> DataError {
    match e.raw_os_error() {
        Some(libc::ENOSYS | libc::EPERM | libc::EACCES) => DataError::Config(format!(
            "io_uring is unavailable on this machine (io_uring_setup: {e}): the kernel lacks it, or it is \
             disabled by sysctl kernel.io_uring_disabled or a seccomp policy; use the file store"
        )),
        _ => DataError::io("set up io_uring", e),
    }
}

/// Handle to the I/O thread; dropping it stops the thread.
pub(crate) struct UringThread {
    tx: Option<Sender<Request>>,
    wake: File,
    thread: Option<JoinHandle<()>>,
}

impl UringThread {
    /// Set up a ring of `entries` (at least 2) and start its thread.
    pub(crate) fn start(entries: u32) -> Result<UringThread, DataError> {
        let ring = new_ring(entries.max(2))?;
        // SAFETY: eventfd takes no pointers; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(DataError::io("create eventfd", io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        let wake = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let thread_wake = wake.try_clone().map_err(|e| DataError::io("duplicate eventfd", e))?;
        let (tx, rx) = mpsc::channel();
        let slots = ring.params().sq_entries().saturating_sub(1).max(1) as usize;
        let worker = Worker {
            ring,
            rx,
            wake: thread_wake,
            wake_buf: Box::new([0; 8]),
            wake_armed: false,
            closing: false,
            slots: (0..slots).map(|_| None).collect(),
            free: (0..slots).rev().collect(),
            backlog: VecDeque::new(),
            reaped: Vec::with_capacity(slots + 1),
        };
        let thread = std::thread::Builder::new()
            .name("shard-uring".into())
            .spawn(move || worker.run())
            .map_err(|e| DataError::io("start the io_uring thread", e))?;
        Ok(UringThread { tx: Some(tx), wake, thread: Some(thread) })
    }

    /// Run `op` on the ring and wait for it to finish.
    pub(crate) fn run(&self, op: Op) -> Result<Done, DataError> {
        let stopped = || DataError::Internal("the io_uring thread stopped".into());
        let (reply, done) = mpsc::sync_channel(1);
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        tx.send(Request { op, done: 0, reply }).map_err(|_| stopped())?;
        (&self.wake).write_all(&1u64.to_ne_bytes()).map_err(|e| DataError::io("wake the io_uring thread", e))?;
        done.recv().map_err(|_| stopped())
    }
}

impl Drop for UringThread {
    fn drop(&mut self) {
        // Closing the channel and waking the thread makes it finish what is
        // in flight and exit.
        drop(self.tx.take());
        let _ = (&self.wake).write_all(&1u64.to_ne_bytes());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the io_uring thread panicked");
            }
        }
    }
}

/// The thread's state.
struct Worker {
    ring: IoUring,
    rx: Receiver<Request>,
    wake: File,
    wake_buf: Box<[u8; 8]>,
    wake_armed: bool,
    /// Every sender is gone: finish and exit.
    closing: bool,
    /// Requests in flight, indexed by `user_data`.
    slots: Vec<Option<Request>>,
    free: Vec<usize>,
    /// Requests (and continuations) waiting for a slot.
    backlog: VecDeque<Request>,
    reaped: Vec<(u64, i32)>,
}

impl Worker {
    fn run(mut self) {
        loop {
            if !self.wake_armed && !self.closing {
                self.arm_wake();
            }
            self.fill();
            if self.closing && !self.wake_armed && self.free.len() == self.slots.len() && self.backlog.is_empty() {
                return;
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => std::thread::yield_now(),
                Err(e) => {
                    // Handled here: every waiting caller gets an error.
                    tracing::error!(error = %e, "io_uring submission failed; stopping the I/O thread");
                    return;
                }
            }
            self.reap();
        }
    }

    fn arm_wake(&mut self) {
        let entry =
            opcode::Read::new(types::Fd(self.wake.as_raw_fd()), self.wake_buf.as_mut_ptr(), 8).build().user_data(WAKE);
        // SAFETY: the eventfd and `wake_buf` are owned by the worker; `Drop`
        // leaks the buffer if the read may still be armed when it ends.
        self.wake_armed = unsafe { self.ring.submission().push(&entry) }.is_ok();
    }

    /// Move waiting requests into free slots and the submission queue.
    fn fill(&mut self) {
        while let Some(slot) = self.free.pop() {
            let Some(mut req) = self.backlog.pop_front() else {
                self.free.push(slot);
                return;
            };
            let entry = entry_for(&mut req, slot as u64);
            self.slots[slot] = Some(req);
            // SAFETY: the entry's file and buffer are owned by the request now
            // in `slots[slot]`, which stays there untouched until its
            // completion is reaped; `Drop` leaks requests still in flight.
            if unsafe { self.ring.submission().push(&entry) }.is_err() {
                if let Some(req) = self.slots[slot].take() {
                    self.backlog.push_front(req);
                }
                self.free.push(slot);
                return;
            }
        }
    }

    fn reap(&mut self) {
        let mut reaped = std::mem::take(&mut self.reaped);
        reaped.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
        for &(user_data, res) in &reaped {
            if user_data == WAKE {
                self.wake_armed = false;
                self.drain_channel();
            } else {
                self.complete(user_data as usize, res);
            }
        }
        reaped.clear();
        self.reaped = reaped;
    }

    fn drain_channel(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(req) => self.backlog.push_back(req),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.closing = true;
                    return;
                }
            }
        }
    }

    fn complete(&mut self, slot: usize, res: i32) {
        let Some(mut req) = self.slots.get_mut(slot).and_then(Option::take) else {
            tracing::error!(slot, "io_uring completion for no request");
            return;
        };
        self.free.push(slot);
        if res == -libc::EINTR || res == -libc::EAGAIN {
            self.backlog.push_front(req);
            return;
        }
        let Ok(n) = usize::try_from(res) else {
            return finish(req, Err(io::Error::from_raw_os_error(-res)));
        };
        req.done += n;
        let finished = match &req.op {
            Op::Fsync { .. } => Some(Ok(0)),
            Op::Read { buf, want, .. } => {
                (n == 0 || req.done >= *want || req.done >= buf.len()).then_some(Ok(req.done))
            }
            Op::Write { .. } if n == 0 => Some(Err(io::Error::from(io::ErrorKind::WriteZero))),
            Op::Write { buf, .. } => (req.done >= buf.len()).then_some(Ok(req.done)),
        };
        match finished {
            Some(result) => finish(req, result),
            None => self.backlog.push_front(req),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The kernel may still write into buffers of operations in flight
        // (ring teardown is asynchronous): never free them.
        for slot in &mut self.slots {
            if let Some(req) = slot.take() {
                std::mem::forget(req);
            }
        }
        if self.wake_armed {
            std::mem::forget(std::mem::take(&mut self.wake_buf));
        }
    }
}

/// The submission for the rest of `req`.
fn entry_for(req: &mut Request, user_data: u64) -> squeue::Entry {
    let done = req.done;
    let entry = match &mut req.op {
        Op::Read { file, buf, offset, .. } => {
            let rest = &mut buf.as_mut_slice()[done..];
            let len = rest.len().min(MAX_IO) as u32;
            opcode::Read::new(types::Fd(file.as_raw_fd()), rest.as_mut_ptr(), len).offset(*offset + done as u64).build()
        }
        Op::Write { file, buf, offset } => {
            let rest = &buf.as_slice()[done..];
            let len = rest.len().min(MAX_IO) as u32;
            opcode::Write::new(types::Fd(file.as_raw_fd()), rest.as_ptr(), len).offset(*offset + done as u64).build()
        }
        Op::Fsync { file } => opcode::Fsync::new(types::Fd(file.as_raw_fd())).build(),
    };
    entry.user_data(user_data)
}

/// Hand a finished request's file and buffer back with its result.
fn finish(req: Request, result: io::Result<usize>) {
    let (file, buf) = match req.op {
        Op::Read { file, buf, .. } | Op::Write { file, buf, .. } => (file, Some(buf)),
        Op::Fsync { file } => (file, None),
    };
    // The caller may have gone (it never does today); the op is complete, so
    // dropping its buffer is safe.
    let _ = req.reply.send(Done { file, buf, result });
}

#[cfg(test)]
#[path = "uring_thread_tests.rs"]
mod tests;
