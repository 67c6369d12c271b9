//! A TCP proxy a test can cut: while open it relays every connection to its
//! target; closing it resets the connections it relays and refuses new ones
//! (a network partition, as a peer sees it: sends fail, nothing arrives).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Shared {
    stop: AtomicBool,
    /// Whether traffic flows; the relayed streams, to cut them. One lock so
    /// that no connection is registered after a cut.
    conns: Mutex<(bool, Vec<TcpStream>)>,
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
        let addr = listener.local_addr().expect("proxy address").to_string();
        let shared = Arc::new(Shared { stop: AtomicBool::new(false), conns: Mutex::new((true, Vec::new())) });
        let (s, t) = (shared.clone(), target.to_string());
        std::thread::spawn(move || accept_loop(listener, t, s));
        Proxy { addr, target: target.to_string(), shared }
    }

    /// Let traffic through (true) or cut it (false).
    pub fn set_open(&self, open: bool) {
        let mut g = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = open;
        if !open {
            for s in g.1.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.set_open(false);
        // Wake the accept loop so it sees the stop flag.
        let _ = TcpStream::connect_timeout(&self.addr.parse().expect("proxy address"), Duration::from_secs(1));
    }
}

fn accept_loop(listener: TcpListener, target: String, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = conn else { continue };
        if !shared.conns.lock().unwrap_or_else(|e| e.into_inner()).0 {
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
        {
            let mut g = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
            if !g.0 {
                continue;
            }
            g.1.push(c3);
            g.1.push(s3);
        }
        std::thread::spawn(move || pump(client, server));
        std::thread::spawn(move || pump(s2, c2));
    }
}

/// Copy one direction until either side closes, then close both.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
