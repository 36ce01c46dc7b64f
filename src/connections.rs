//! The server's open connections: a cap on how many there are, and which of
//! them can be closed without losing an answer, to make room for a new one
//! or at shutdown.
//!
//! A connection is *busy* from the moment a request's head has arrived until
//! its response has been sent. Any other connection is idle between requests
//! or still receiving a head: closing it loses nothing a client was promised.
//! So a flood of idle or half-sent connections cannot lock scrapes out: each
//! newcomer past the cap closes the oldest connection that is not busy, and
//! only when every connection is busy is the newcomer turned away.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The open connections of one server.
pub struct Connections {
    cap: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// By id, so by age: the first idle one is the oldest.
    open: BTreeMap<u64, Entry>,
    closing: bool,
}

struct Entry {
    busy: Arc<AtomicUsize>,
    close: oneshot::Sender<()>,
}

/// A connection let in: it leaves the registry when dropped.
pub struct Admitted {
    id: u64,
    registry: Arc<Connections>,
    /// Requests in flight on this connection.
    pub busy: Arc<AtomicUsize>,
    /// Completes when the connection must be closed at once.
    pub closed: oneshot::Receiver<()>,
}

/// Why a connection was not let in.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every connection is busy and the cap is reached.
    Full,
    /// The server is shutting down.
    ShuttingDown,
}

impl Connections {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Connections {
            cap: cap.max(1),
            state: Mutex::new(State::default()),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// How many connections are open (tests).
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// Lets a new connection in, closing the oldest connection that is not
    /// busy when the cap is reached.
    pub fn admit(self: &Arc<Self>) -> Result<Admitted, Refused> {
        let mut state = self.lock();
        if state.closing {
            return Err(Refused::ShuttingDown);
        }
        if state.open.len() >= self.cap {
            let oldest_idle = state
                .open
                .iter()
                .find(|(_, e)| e.busy.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id);
            let Some(id) = oldest_idle else {
                return Err(Refused::Full);
            };
            if let Some(entry) = state.open.remove(&id) {
                let _ = entry.close.send(());
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        let busy = Arc::new(AtomicUsize::new(0));
        let (close, closed) = oneshot::channel();
        state.open.insert(
            id,
            Entry {
                busy: busy.clone(),
                close,
            },
        );
        Ok(Admitted {
            id,
            registry: self.clone(),
            busy,
            closed,
        })
    }

    /// At shutdown: refuses newcomers and closes every connection that is
    /// not busy. Busy ones finish their response (the graceful drain).
    pub fn close_idle(&self) {
        let mut state = self.lock();
        state.closing = true;
        let idle: Vec<u64> = state
            .open
            .iter()
            .filter(|(_, e)| e.busy.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            if let Some(entry) = state.open.remove(&id) {
                let _ = entry.close.send(());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent through a panic elsewhere: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry.lock().open.remove(&self.id);
    }
}

/// Marks a connection busy while it lives: from a request's head to the
/// end of its response.
pub struct BusyGuard(Arc<AtomicUsize>);

impl BusyGuard {
    pub fn new(busy: &Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::AcqRel);
        BusyGuard(busy.clone())
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Raises the soft open-files limit to the hard one (as the Go runtime does
/// for every exporter written in Go) and returns the connection cap that
/// fits it: at most half the descriptors go to scrapers, the rest stay for
/// the API client and the process itself.
pub fn cap_for_open_files(wanted: usize) -> usize {
    match open_files_limit() {
        Some(limit) => wanted.min(usize::try_from(limit / 2).unwrap_or(usize::MAX).max(1)),
        None => wanted,
    }
}

#[cfg(unix)]
fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    // RLIM_INFINITY is the largest value: no bound then. (rlim_t is
    // narrower than u64 on some targets.)
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn open_files_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_the_oldest_idle_connection_is_closed() {
        let connections = Connections::new(3);
        let mut first = connections.admit().unwrap();
        let mut second = connections.admit().unwrap();
        let _busy = BusyGuard::new(&first.busy);
        let mut third = connections.admit().unwrap();
        assert_eq!(connections.open(), 3);

        // The first is busy: the second (oldest idle) makes room.
        let mut fourth = connections.admit().unwrap();
        assert!(first.closed.try_recv().is_err(), "a busy one is kept");
        assert!(second.closed.try_recv().is_ok(), "the oldest idle one goes");
        assert!(third.closed.try_recv().is_err());
        assert!(fourth.closed.try_recv().is_err());
        assert_eq!(connections.open(), 3);
    }

    #[test]
    fn when_every_connection_is_busy_a_newcomer_is_refused() {
        let connections = Connections::new(2);
        let a = connections.admit().unwrap();
        let b = connections.admit().unwrap();
        let guards = (BusyGuard::new(&a.busy), BusyGuard::new(&b.busy));
        assert_eq!(connections.admit().err(), Some(Refused::Full));
        drop(guards);
        assert!(connections.admit().is_ok(), "room once a response is sent");
    }

    #[test]
    fn a_closed_connection_leaves_the_registry() {
        let connections = Connections::new(2);
        let a = connections.admit().unwrap();
        assert_eq!(connections.open(), 1);
        drop(a);
        assert_eq!(connections.open(), 0);
    }

    #[test]
    fn shutdown_closes_the_idle_and_keeps_the_busy() {
        let connections = Connections::new(10);
        let mut idle = connections.admit().unwrap();
        let mut busy = connections.admit().unwrap();
        let guard = BusyGuard::new(&busy.busy);
        connections.close_idle();
        assert!(idle.closed.try_recv().is_ok());
        assert!(busy.closed.try_recv().is_err());
        assert_eq!(connections.admit().err(), Some(Refused::ShuttingDown));
        drop(guard);
    }
}
