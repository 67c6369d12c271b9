//! A linearizability checker: the Wing–Gong search with Lowe's memoization
//! (the algorithm behind Porcupine and Knossos' "linear" checker).
//!
//! A history is a set of operations, each with an invocation time, a
//! completion time and an output. It is linearizable when the operations can
//! be put in one sequential order that (a) respects real time — an operation
//! that completed before another was invoked comes first — and (b) is legal
//! for the sequential specification ([`Model`]).
//!
//! Operations whose outcome is unknown (the client timed out) have no
//! completion time (`ret: None`, i.e. +∞) and no output: they may take effect
//! at any point after their invocation, or never (an operation linearized
//! after every other one has no visible effect).
//!
//! The search walks the invocation/completion events in time order, keeping
//! a doubly linked list of the events not yet linearized. At a call event it
//! tries to linearize that operation now (the model must accept it, and the
//! (linearized set, state) pair must be new — the memo); at a completion
//! event of an operation not yet linearized it backtracks. It succeeds when
//! every operation with a known outcome is linearized.

#![allow(dead_code)]

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash;
    type Input;
    type Output;
    fn init(&self) -> Self::State;
    /// The state after applying `input` in `state` when it returned `output`
    /// (`None`: the output is unknown, anything goes), or `None` when the
    /// specification does not allow that output in that state.
    fn step(&self, state: &Self::State, input: &Self::Input, output: Option<&Self::Output>) -> Option<Self::State>;
}

/// One operation of a history. Times share one monotonic clock.
#[derive(Debug, Clone)]
pub struct Operation<I, O> {
    pub client: usize,
    pub input: I,
    /// `None`: the outcome is unknown (timeout, unreachable).
    pub output: Option<O>,
    pub call: u64,
    /// `None`: never observed to complete (+∞).
    pub ret: Option<u64>,
}

#[derive(Debug)]
pub enum Verdict {
    /// Linearizable; the order found (indexes into the history; operations of
    /// unknown outcome that were not needed are left out).
    Linearizable(Vec<usize>),
    /// Not linearizable; `stuck` names the operations with a known outcome
    /// that the deepest attempt could not place.
    NotLinearizable { deepest: usize, stuck: Vec<usize> },
    /// The search exceeded its step budget.
    GaveUp { steps: u64 },
}

impl Verdict {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable(_))
    }
}

const NONE: usize = usize::MAX;

#[derive(Clone, Copy)]
struct Node {
    op: usize,
    is_call: bool,
    /// For a call: its completion node (NONE when +∞).
    matching: usize,
    prev: usize,
    next: usize,
}

/// A doubly linked list over event nodes with a sentinel head at index 0,
/// so that lifting and unlifting are O(1) (dancing links).
struct Events {
    nodes: Vec<Node>,
}

impl Events {
    fn build<I, O>(history: &[Operation<I, O>]) -> Events {
        // (time, 0 = call / 1 = return, op): at equal times calls come
        // first, so such operations count as concurrent (never a false alarm).
        let mut evs: Vec<(u64, u8, usize)> = Vec::with_capacity(history.len() * 2);
        for (i, op) in history.iter().enumerate() {
            evs.push((op.call, 0, i));
            if let Some(r) = op.ret {
                assert!(r >= op.call, "operation {i} completes before it is invoked");
                evs.push((r, 1, i));
            }
        }
        evs.sort_unstable();
        let mut nodes = vec![Node { op: NONE, is_call: false, matching: NONE, prev: NONE, next: NONE }];
        let mut call_node = vec![NONE; history.len()];
        for (k, &(_, kind, op)) in evs.iter().enumerate() {
            let idx = k + 1;
            nodes.push(Node { op, is_call: kind == 0, matching: NONE, prev: idx - 1, next: NONE });
            nodes[idx - 1].next = idx;
            if kind == 0 {
                call_node[op] = idx;
            } else {
                nodes[call_node[op]].matching = idx;
            }
        }
        Events { nodes }
    }

    fn unlink(&mut self, i: usize) {
        let Node { prev, next, .. } = self.nodes[i];
        self.nodes[prev].next = next;
        if next != NONE {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, i: usize) {
        let Node { prev, next, .. } = self.nodes[i];
        self.nodes[prev].next = i;
        if next != NONE {
            self.nodes[next].prev = i;
        }
    }

    /// Remove a call and its completion.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let m = self.nodes[call].matching;
        if m != NONE {
            self.unlink(m);
        }
    }

    /// Undo [`Events::lift`] (in reverse order).
    fn unlift(&mut self, call: usize) {
        let m = self.nodes[call].matching;
        if m != NONE {
            self.relink(m);
        }
        self.relink(call);
    }
}

/// Check `history` against `model`, giving up after `max_steps` search steps.
pub fn check<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>], max_steps: u64) -> Verdict {
    for (i, op) in history.iter().enumerate() {
        assert!(op.ret.is_some() || op.output.is_none(), "operation {i}: an output without a completion");
    }
    let mut ev = Events::build(history);
    let words = history.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut known_left = history.iter().filter(|o| o.ret.is_some()).count();
    let mut state = model.init();
    let mut memo: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    // (call node, state before it)
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut deepest = 0usize;
    let mut stuck = Vec::new();
    let mut steps = 0u64;
    let mut entry = ev.nodes[0].next;
    while known_left > 0 {
        steps += 1;
        if steps > max_steps {
            return Verdict::GaveUp { steps };
        }
        if entry == NONE {
            // Only calls of unknown-outcome operations lie ahead, yet some
            // operation with a known outcome is still unplaced: impossible,
            // its completion would be in the list.
            unreachable!("ran off the event list with known operations left");
        }
        let node = ev.nodes[entry];
        if node.is_call {
            let op = &history[node.op];
            if let Some(next) = model.step(&state, &op.input, op.output.as_ref()) {
                let mut bits = linearized.clone();
                bits[node.op / 64] |= 1 << (node.op % 64);
                if memo.insert((bits.clone(), next.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, next)));
                    linearized = bits;
                    if op.ret.is_some() {
                        known_left -= 1;
                    }
                    ev.lift(entry);
                    entry = ev.nodes[0].next;
                    continue;
                }
            }
            entry = node.next;
        } else {
            // A completion of an operation not linearized yet: backtrack.
            if stack.len() >= deepest {
                deepest = stack.len();
                stuck = pending_known(&ev, history);
            }
            let Some((call, prev_state)) = stack.pop() else {
                return Verdict::NotLinearizable { deepest, stuck };
            };
            let op = ev.nodes[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            if history[op].ret.is_some() {
                known_left += 1;
            }
            state = prev_state;
            ev.unlift(call);
            entry = ev.nodes[call].next;
        }
    }
    Verdict::Linearizable(stack.iter().map(|(call, _)| ev.nodes[*call].op).collect())
}

/// Operations with a known outcome still in the list, up to the first
/// completion event (the ones the search was trying to place).
fn pending_known<I, O>(ev: &Events, history: &[Operation<I, O>]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = ev.nodes[0].next;
    while i != NONE {
        let n = ev.nodes[i];
        if !n.is_call {
            out.push(n.op);
            break;
        }
        if history[n.op].ret.is_some() {
            out.push(n.op);
        }
        i = n.next;
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A single integer register, initially 0.
    struct Register;

    #[derive(Debug, Clone)]
    enum RegIn {
        Write(u64),
        Read,
    }

    impl Model for Register {
        type State = u64;
        type Input = RegIn;
        type Output = u64;
        fn init(&self) -> u64 {
            0
        }
        fn step(&self, state: &u64, input: &RegIn, output: Option<&u64>) -> Option<u64> {
            match input {
                RegIn::Write(v) => Some(*v),
                RegIn::Read => match output {
                    None => Some(*state),
                    Some(v) if v == state => Some(*state),
                    Some(_) => None,
                },
            }
        }
    }

    fn op(client: usize, input: RegIn, output: Option<u64>, call: u64, ret: Option<u64>) -> Operation<RegIn, u64> {
        Operation { client, input, output, call, ret }
    }

    fn w(client: usize, v: u64, call: u64, ret: u64) -> Operation<RegIn, u64> {
        op(client, RegIn::Write(v), Some(0), call, Some(ret))
    }

    fn r(client: usize, v: u64, call: u64, ret: u64) -> Operation<RegIn, u64> {
        op(client, RegIn::Read, Some(v), call, Some(ret))
    }

    fn verdict(h: &[Operation<RegIn, u64>]) -> Verdict {
        check(&Register, h, 1_000_000)
    }

    #[test]
    fn accepts_a_sequential_history() {
        let h = vec![w(0, 1, 0, 10), r(1, 1, 20, 30), w(1, 2, 40, 50), r(0, 2, 60, 70)];
        match verdict(&h) {
            Verdict::Linearizable(order) => assert_eq!(order, vec![0, 1, 2, 3]),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn accepts_overlapping_operations_in_either_order() {
        // The read overlaps the write: it may see the old or the new value.
        assert!(verdict(&[w(0, 1, 0, 100), r(1, 0, 10, 20)]).is_linearizable());
        assert!(verdict(&[w(0, 1, 0, 100), r(1, 1, 10, 20)]).is_linearizable());
        // Two reads inside one write: old then new is fine.
        assert!(verdict(&[w(0, 1, 0, 100), r(1, 0, 10, 20), r(2, 1, 30, 40)]).is_linearizable());
    }

    #[test]
    fn rejects_a_stale_read() {
        // The write completed before the read began; the read saw the old value.
        match verdict(&[w(0, 1, 0, 10), r(1, 0, 20, 30)]) {
            Verdict::NotLinearizable { stuck, .. } => assert!(stuck.contains(&1), "{stuck:?}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn rejects_new_then_old_reads() {
        // Both reads overlap the write, but once a later read saw the old
        // value after an earlier one saw the new, no order works.
        assert!(!verdict(&[w(0, 1, 0, 100), r(1, 1, 10, 20), r(2, 0, 30, 40)]).is_linearizable());
    }

    #[test]
    fn rejects_a_value_nobody_wrote() {
        assert!(!verdict(&[w(0, 1, 0, 10), r(1, 7, 5, 30)]).is_linearizable());
    }

    #[test]
    fn unknown_outcomes_may_apply_late_or_never() {
        let lost = |call| op(0, RegIn::Write(5), None, call, None);
        // Never visible.
        assert!(verdict(&[lost(0), r(1, 0, 10, 20), r(1, 0, 30, 40)]).is_linearizable());
        // Visible long after the client gave up.
        assert!(verdict(&[lost(0), r(1, 0, 10, 20), r(1, 5, 30, 40)]).is_linearizable());
        // Not before it was invoked.
        assert!(!verdict(&[r(1, 5, 0, 10), lost(20)]).is_linearizable());
        // Once visible it stays (no other writes).
        assert!(!verdict(&[lost(0), r(1, 5, 10, 20), r(1, 0, 30, 40)]).is_linearizable());
    }

    #[test]
    fn backtracks_out_of_a_wrong_first_choice() {
        // Three concurrent writes, then reads that pin the order 3, 1, 2.
        let h = vec![w(0, 1, 0, 100), w(1, 2, 0, 100), w(2, 3, 0, 100), r(3, 2, 200, 210), r(4, 2, 220, 230)];
        assert!(verdict(&h).is_linearizable());
        let mut bad = h.clone();
        bad.push(r(3, 1, 240, 250));
        assert!(!verdict(&bad).is_linearizable());
    }

    #[test]
    fn many_concurrent_clients_stay_fast() {
        // 4 clients, 2,000 overlapping operations on one register.
        let mut h = Vec::new();
        let mut value = 0u64;
        for k in 0..500u64 {
            let t = k * 100;
            value += 1;
            h.push(w(0, value, t, t + 150));
            h.push(r(1, value - 1, t + 1, t + 60));
            h.push(r(2, value, t + 151, t + 160));
            h.push(op(3, RegIn::Read, Some(value), t + 155, Some(t + 190)));
        }
        match verdict(&h) {
            Verdict::Linearizable(order) => assert_eq!(order.len(), h.len()),
            v => panic!("{v:?}"),
        }
    }
}
