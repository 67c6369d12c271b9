//! A TCP proxy a test can cut: while open it relays every connection to its
//! target; closing it resets the connections it relays and refuses new ones
//! (a network partition, as a peer sees it: sends fail, nothing arrives).
//!
//! Beyond open and cut ([`Proxy::set_open`]), [`Proxy::set_mode`] gives the
//! faults of a lossy network as TCP shows them to the two ends
//! (`shardline-nemesis` uses them all):
//! - [`Mode::Blackhole`]: packets vanish both ways. Connections stay up but
//!   nothing moves (the senders' buffers fill, then they block); new
//!   connections are accepted and then stall too. Healing resumes them with
//!   nothing lost, as TCP retransmission would.
//! - [`Mode::Stall`]: the same, one way only (`Dir::Forward`: from the
//!   connecting side to the target; `Dir::Backward`: the replies).
//! - [`Mode::Discard`]: one way's bytes are read and thrown away, so the
//!   sender sees its sends succeed and the receiver sees nothing more. A
//!   connection that lost bytes is reset when the mode changes (the receiver
//!   must never see a stream with a hole in it).
//! - [`Mode::Delay`]: each read is held this long before it is passed on.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A direction through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the side that connected to the proxy towards its target.
    Forward,
    /// The target's replies.
    Backward,
}

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Open,
    /// Reset every relayed connection, refuse new ones.
    Cut,
    /// Nothing moves either way; nothing is lost.
    Blackhole,
    /// Nothing moves one way; nothing is lost.
    Stall(Dir),
    /// One way's bytes are thrown away.
    Discard(Dir),
    /// Every read is held this many milliseconds before it is relayed.
    Delay(u64),
}

struct Shared {
    stop: AtomicBool,
    /// The mode; the relayed streams, to cut them. One lock so that no
    /// connection is registered after a cut.
    state: Mutex<State>,
    changed: Condvar,
    /// Bumped at every mode change: a pump that discarded bytes in an older
    /// generation resets its connection.
    generation: AtomicU64,
}

struct State {
    mode: Mode,
    conns: Vec<Conn>,
}

struct Conn {
    id: u64,
    streams: [TcpStream; 2],
    /// The generation in which this connection lost bytes, if it did.
    lossy: Arc<Mutex<Option<u64>>>,
}

pub struct Proxy {
    /// The address it listens on.
    pub addr: String,
    pub target: String,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listen on `listen` (port 0: any free port) and relay to `target`.
    pub fn start(listen: &str, target: &str) -> Proxy {
        // A server just killed on this address may linger a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(listen) {
                Ok(l) => break l,
                Err(e) if std::time::Instant::now() > deadline => {
                    let ss = std::process::Command::new("ss").arg("-tanp").output().map(|o| o.stdout);
                    let port = listen.rsplit(':').next().unwrap_or_default();
                    let holders: Vec<String> = String::from_utf8_lossy(&ss.unwrap_or_default())
                        .lines()
                        .filter(|l| l.contains(&format!(":{port} ")))
                        .map(str::to_string)
                        .collect();
                    panic!("bind proxy on {listen}: {e}; sockets on that port: {holders:#?}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        Self::with_listener(listener, target)
    }

    /// Relay connections accepted on `listener` to `target`.
    pub fn with_listener(listener: TcpListener, target: &str) -> Proxy {
        let addr = listener.local_addr().expect("proxy address").to_string();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(State { mode: Mode::Open, conns: Vec::new() }),
            changed: Condvar::new(),
            generation: AtomicU64::new(0),
        });
        let (s, t) = (shared.clone(), target.to_string());
        std::thread::spawn(move || accept_loop(listener, t, s));
        Proxy { addr, target: target.to_string(), shared }
    }

    /// Let traffic through (true) or cut it (false).
    pub fn set_open(&self, open: bool) {
        self.set_mode(if open { Mode::Open } else { Mode::Cut });
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner()).mode
    }

    /// Change what the proxy does with traffic (see [`Mode`]).
    pub fn set_mode(&self, mode: Mode) {
        let mut g = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst);
        g.mode = mode;
        let cut_all = mode == Mode::Cut;
        g.conns.retain(|c| {
            let lossy = c.lossy.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|gen| gen <= generation);
            if cut_all || lossy {
                for s in &c.streams {
                    let _ = s.shutdown(Shutdown::Both);
                }
                false
            } else {
                true
            }
        });
        drop(g);
        self.shared.changed.notify_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.set_mode(Mode::Cut);
        // Wake the accept loop so it sees the stop flag.
        if let Ok(addr) = self.addr.parse() {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
    }
}

fn accept_loop(listener: TcpListener, target: String, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = conn else { continue };
        if shared.state.lock().unwrap_or_else(|e| e.into_inner()).mode == Mode::Cut {
            continue; // dropped: the connection is closed at once
        }
        let Ok(target_addr) = target.parse() else { return };
        let Ok(server) = TcpStream::connect_timeout(&target_addr, Duration::from_secs(1)) else { continue };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) =
            (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone())
        else {
            continue;
        };
        next_id += 1;
        let lossy = Arc::new(Mutex::new(None));
        {
            let mut g = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            if g.mode == Mode::Cut {
                continue;
            }
            g.conns.push(Conn { id: next_id, streams: [c3, s3], lossy: lossy.clone() });
        }
        let (sh, l) = (shared.clone(), lossy.clone());
        std::thread::spawn(move || pump(client, server, Dir::Forward, sh, l, next_id));
        let sh = shared.clone();
        std::thread::spawn(move || pump(s2, c2, Dir::Backward, sh, lossy, next_id));
    }
}

/// Copy one direction until either side closes, then close both.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    dir: Dir,
    shared: Arc<Shared>,
    lossy: Arc<Mutex<Option<u64>>>,
    id: u64,
) {
    let mut buf = vec![0u8; 64 << 10];
    'relay: loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Wait while this direction may not move; then relay, hold or drop.
        let mut g = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if shared.stop.load(Ordering::Relaxed) || !g.conns.iter().any(|c| c.id == id) {
                break 'relay;
            }
            match g.mode {
                Mode::Cut => break 'relay,
                Mode::Blackhole => {}
                Mode::Stall(d) if d == dir => {}
                Mode::Discard(d) if d == dir => {
                    let generation = shared.generation.load(Ordering::SeqCst);
                    lossy.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(generation);
                    continue 'relay;
                }
                Mode::Delay(ms) => {
                    drop(g);
                    std::thread::sleep(Duration::from_millis(ms));
                    break;
                }
                _ => {
                    drop(g);
                    break;
                }
            }
            g = shared.changed.wait_timeout(g, Duration::from_millis(200)).unwrap_or_else(|e| e.into_inner()).0;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    let mut g = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    g.conns.retain(|c| c.id != id);
}
