//! What each file may hold: the bytes of every write are a pure function of
//! (file, version, offset), so a byte read back names the write it came
//! from. Each file has one writer at a time, so its writes form a sequence;
//! [`FileModel`] keeps it (with each write's invocation and completion
//! times and whether it was acknowledged) and answers, for a read invoked
//! at `call` and returned at `ret`, which writes each byte may come from:
//! the newest write acknowledged before `call` that covers it, and every
//! later write invoked before `ret` (acknowledged, failed or still running:
//! a failed write may have applied in part). A byte that matches none is a
//! wrong read if no write ever put it there, and a stale read (an
//! acknowledged write lost or hidden) if an older write did.

use shardline_types::placement::mix64;

/// The byte a write of `version` puts at `offset` of file `file`.
pub fn byte_at(file: u64, version: u64, offset: u64) -> u8 {
    let word = mix64(mix64(file.rotate_left(17) ^ version) ^ (offset >> 3));
    (word >> ((offset & 7) * 8)) as u8
}

/// The bytes a write of `version` puts at `[offset, offset + len)`.
pub fn fill(file: u64, version: u64, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| byte_at(file, version, offset + i)).collect()
}

/// What a write did to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// The whole file replaced by `len` bytes (a new file renamed over it).
    Replace { len: u64 },
    /// `[off, off + len)` overwritten or appended in place (never past the
    /// end, so no holes).
    Patch { off: u64, len: u64 },
}

/// How a write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Acked,
    /// It failed: it may have applied in whole, in part, or not at all.
    Failed,
}

#[derive(Debug, Clone)]
pub struct WriteRec {
    pub version: u64,
    pub kind: WriteKind,
    /// Nanoseconds on the run's clock.
    pub call: u64,
    pub ret: Option<u64>,
    pub outcome: Outcome,
}

/// A value a byte may hold: the byte of a write, or no byte (past the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cand {
    Write(usize),
    Absent,
}

/// How a read (or the final read) compared with the model.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadCheck {
    pub bytes_checked: u64,
    /// Bytes no write ever put at their offset.
    pub wrong: u64,
    /// Bytes from a write older than one acknowledged before the read
    /// began, or bytes missing (short read) that such a write put there.
    pub stale: u64,
    /// The first bad offset and what was wrong there, for the report.
    pub first_bad: Option<String>,
    /// Acknowledged writes (indexes) whose bytes a bad byte should have held.
    pub lost_writes: std::collections::BTreeSet<usize>,
}

impl ReadCheck {
    pub fn ok(&self) -> bool {
        self.wrong == 0 && self.stale == 0
    }

    fn bad(&mut self, wrong: bool, what: impl FnOnce() -> String) {
        if wrong {
            self.wrong += 1;
        } else {
            self.stale += 1;
        }
        if self.first_bad.is_none() {
            self.first_bad = Some(what());
        }
    }
}

/// One file's history of writes.
#[derive(Debug, Clone)]
pub struct FileModel {
    pub key: u64,
    pub writes: Vec<WriteRec>,
}

impl FileModel {
    pub fn new(key: u64) -> Self {
        FileModel { key, writes: Vec::new() }
    }

    /// Record a write as it is invoked; returns its index.
    pub fn begin(&mut self, version: u64, kind: WriteKind, call: u64) -> usize {
        self.writes.push(WriteRec { version, kind, call, ret: None, outcome: Outcome::Running });
        self.writes.len() - 1
    }

    pub fn end(&mut self, idx: usize, ret: u64, acked: bool) {
        if let Some(w) = self.writes.get_mut(idx) {
            w.ret = Some(ret);
            w.outcome = if acked { Outcome::Acked } else { Outcome::Failed };
        }
    }

    /// Whether any write may have created the file by `before`.
    pub fn may_exist(&self) -> bool {
        !self.writes.is_empty()
    }

    /// Whether some write was acknowledged (the file must exist).
    pub fn must_exist(&self) -> bool {
        self.writes.iter().any(|w| w.outcome == Outcome::Acked)
    }

    /// What write `w` does at `offset`: Some(value) where it decides the
    /// byte (None inside: past its end), None where it leaves it alone.
    fn effect(&self, w: &WriteRec, offset: u64) -> Option<Cand> {
        match w.kind {
            WriteKind::Replace { len } => Some(if offset < len { Cand::Write(0) } else { Cand::Absent }),
            WriteKind::Patch { off, len } => (offset >= off && offset < off + len).then_some(Cand::Write(0)),
        }
    }

    /// Check `data`, read from `offset` at [`call`, `ret`] asking for
    /// `asked` bytes (fewer came back at the end of the file).
    pub fn check_read(&self, offset: u64, asked: u64, data: &[u8], call: u64, ret: u64) -> ReadCheck {
        let mut out = ReadCheck::default();
        let end = offset + asked.max(data.len() as u64);
        // Elementary intervals: between every boundary of a write inside [offset, end).
        let mut points = vec![offset, end];
        for w in &self.writes {
            let (a, b) = match w.kind {
                WriteKind::Replace { len } => (len, len),
                WriteKind::Patch { off, len } => (off, off + len),
            };
            for p in [a, b] {
                if p > offset && p < end {
                    points.push(p);
                }
            }
        }
        points.sort_unstable();
        points.dedup();
        for pair in points.windows(2) {
            let (lo, hi) = (pair[0], pair[1]);
            let (cands, resolver) = self.candidates(lo, call, ret);
            for o in lo..hi {
                let got = data.get((o - offset) as usize).copied();
                if !self.check_byte(o, got, &cands, &mut out) {
                    out.lost_writes.extend(resolver);
                }
            }
        }
        out
    }

    /// The candidates for bytes in an elementary interval starting at `at`.
    /// Also the acknowledged write that decides the byte as of `call`.
    fn candidates(&self, at: u64, call: u64, ret: u64) -> (Vec<Cand>, Option<usize>) {
        let mut cands = Vec::new();
        for (i, w) in self.writes.iter().enumerate().rev() {
            if w.call >= ret {
                continue;
            }
            let Some(effect) = self.effect(w, at) else { continue };
            let c = match effect {
                Cand::Write(_) => Cand::Write(i),
                Cand::Absent => Cand::Absent,
            };
            if !cands.contains(&c) {
                cands.push(c);
            }
            if w.outcome == Outcome::Acked && w.ret.is_some_and(|r| r < call) {
                return (cands, Some(i));
            }
        }
        // Before every write: no file, no byte.
        if !cands.contains(&Cand::Absent) {
            cands.push(Cand::Absent);
        }
        (cands, None)
    }

    /// Whether the byte is one of the candidates (else it is counted).
    fn check_byte(&self, o: u64, got: Option<u8>, cands: &[Cand], out: &mut ReadCheck) -> bool {
        if got.is_some() {
            out.bytes_checked += 1;
        }
        let matches = |c: &Cand| match (c, got) {
            (Cand::Absent, None) => true,
            (Cand::Write(i), Some(b)) => byte_at(self.key, self.writes[*i].version, o) == b,
            _ => false,
        };
        if cands.iter().any(matches) {
            return true;
        }
        match got {
            // Missing bytes: an acknowledged write put bytes here.
            None => out.bad(false, || format!("offset {o}: short read, expected bytes of {:?}", self.names(cands))),
            Some(b) => {
                let older = self
                    .writes
                    .iter()
                    .find(|w| self.effect(w, o) == Some(Cand::Write(0)) && byte_at(self.key, w.version, o) == b);
                match older {
                    Some(w) => out.bad(false, || {
                        format!("offset {o}: byte of old version {:x}, expected {:?}", w.version, self.names(cands))
                    }),
                    None => out.bad(true, || {
                        format!("offset {o}: byte {b:#04x} no write put here, expected {:?}", self.names(cands))
                    }),
                }
            }
        }
        false
    }

    fn names(&self, cands: &[Cand]) -> Vec<String> {
        cands
            .iter()
            .map(|c| match c {
                Cand::Absent => "end of file".to_string(),
                Cand::Write(i) => format!("v{:x}", self.writes[*i].version),
            })
            .collect()
    }

    /// The writes that could matter to a read at [`call`, `ret`], for reports.
    pub fn describe(&self, call: u64, ret: u64) -> String {
        let from = self
            .writes
            .iter()
            .rposition(|w| {
                matches!(w.kind, WriteKind::Replace { .. })
                    && w.outcome == Outcome::Acked
                    && w.ret.is_some_and(|r| r < call)
            })
            .unwrap_or(0)
            .saturating_sub(2);
        let ms = |t: u64| t as f64 / 1e6;
        let mut out = format!("read at [{:.1}, {:.1}] ms; writes:", ms(call), ms(ret));
        for w in self.writes[from..].iter().filter(|w| w.call < ret) {
            out.push_str(&format!(
                " v{:x} {:?} [{:.1}, {}] {:?};",
                w.version,
                w.kind,
                ms(w.call),
                w.ret.map_or("-".to_string(), |r| format!("{:.1}", ms(r))),
                w.outcome
            ));
        }
        out
    }

    /// The largest size the file may have now (for the final read's length).
    pub fn max_size(&self) -> u64 {
        let mut size = 0u64;
        let mut max = 0u64;
        for w in &self.writes {
            match w.kind {
                WriteKind::Replace { len } => size = len,
                WriteKind::Patch { off, len } => size = size.max(off + len),
            }
            max = max.max(size);
        }
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> FileModel {
        FileModel::new(7)
    }

    fn acked(m: &mut FileModel, v: u64, kind: WriteKind, call: u64, ret: u64) {
        let i = m.begin(v, kind, call);
        m.end(i, ret, true);
    }

    fn contents(m: &FileModel, size: u64, layers: &[(u64, WriteKind)]) -> Vec<u8> {
        let mut out = vec![0u8; size as usize];
        for (v, k) in layers {
            let (a, b) = match *k {
                WriteKind::Replace { len } => (0, len),
                WriteKind::Patch { off, len } => (off, off + len),
            };
            for o in a..b.min(size) {
                out[o as usize] = byte_at(m.key, *v, o);
            }
        }
        out
    }

    #[test]
    fn bytes_depend_on_file_version_and_offset() {
        assert_ne!(fill(1, 1, 0, 64), fill(2, 1, 0, 64));
        assert_ne!(fill(1, 1, 0, 64), fill(1, 2, 0, 64));
        assert_eq!(fill(1, 1, 8, 8), fill(1, 1, 0, 16)[8..]);
    }

    #[test]
    fn a_read_after_acknowledged_writes_must_see_them() {
        let mut m = model();
        acked(&mut m, 1, WriteKind::Replace { len: 100 }, 0, 10);
        acked(&mut m, 2, WriteKind::Patch { off: 20, len: 30 }, 20, 30);
        let good =
            contents(&m, 100, &[(1, WriteKind::Replace { len: 100 }), (2, WriteKind::Patch { off: 20, len: 30 })]);
        let c = m.check_read(0, 100, &good, 40, 50);
        assert!(c.ok() && c.bytes_checked == 100, "{c:?}");
        // The old version at the patched range: stale.
        let old = contents(&m, 100, &[(1, WriteKind::Replace { len: 100 })]);
        let c = m.check_read(0, 100, &old, 40, 50);
        assert_eq!((c.wrong, c.stale), (0, 30), "{c:?}");
        assert_eq!(c.lost_writes.into_iter().collect::<Vec<_>>(), vec![1], "the patch is the write lost");
        // The same read overlapping the patch may see either.
        assert!(m.check_read(0, 100, &old, 25, 50).ok());
        // A flipped byte is wrong, and a short read is stale (data lost).
        let mut bad = good.clone();
        bad[5] ^= 1;
        assert_eq!(m.check_read(0, 100, &bad, 40, 50).wrong, 1);
        assert_eq!(m.check_read(0, 100, &good[..90], 40, 50).stale, 10);
    }

    #[test]
    fn failed_writes_may_or_may_not_have_applied_in_part() {
        let mut m = model();
        acked(&mut m, 1, WriteKind::Replace { len: 50 }, 0, 10);
        let i = m.begin(2, WriteKind::Patch { off: 50, len: 50 }, 20);
        m.end(i, 30, false);
        let base = contents(&m, 50, &[(1, WriteKind::Replace { len: 50 })]);
        assert!(m.check_read(0, 100, &base, 40, 50).ok(), "not applied");
        let all = contents(&m, 100, &[(1, WriteKind::Replace { len: 50 }), (2, WriteKind::Patch { off: 50, len: 50 })]);
        assert!(m.check_read(0, 100, &all, 40, 50).ok(), "applied");
        // Bytes beyond anything ever written are wrong.
        let mut long = all.clone();
        long.push(0);
        assert_eq!(m.check_read(0, 101, &long, 40, 50).wrong, 1);
    }

    #[test]
    fn a_write_begun_after_the_read_returned_is_no_candidate() {
        let mut m = model();
        acked(&mut m, 1, WriteKind::Replace { len: 10 }, 0, 10);
        acked(&mut m, 2, WriteKind::Replace { len: 10 }, 100, 110);
        let newer = fill(m.key, 2, 0, 10);
        let c = m.check_read(0, 10, &newer, 20, 30);
        assert_eq!(c.stale, 10, "a read cannot see the future: {c:?}");
        assert_eq!(m.max_size(), 10);
    }
}
