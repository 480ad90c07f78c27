//! One reader of the outbox for every watcher on this node.
//!
//! Watch streams and long polls wait for events about the secrets they can see. If
//! each read the outbox on every commit, N idle waiters would cost N store reads per
//! write. Instead one task follows the store's feed, reads each new event once, keeps
//! the latest ones in memory, and wakes only the waiters that can see one of them: a
//! waiter whose prefix and policies match nothing that is written costs nothing.
//! Waiters read from memory; one that resumes from further back than memory holds
//! reads the store, a page at a time.
//!
//! Each principal may hold a bounded number of waiters at once
//! ([`super::Settings::max_waiters_per_principal`]).

use super::{PAGE, visible};
use crate::caller::Caller;
use crate::service::SecretService;
use rotor_core::{Error, ErrorKind, Result};
use rotor_store::{Event, Store};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// Events kept in memory for waiters to read.
const RECENT: usize = 4096;

/// The events in `(base, last]`, in order.
struct Recent {
    base: i64,
    events: VecDeque<Event>,
}

impl Recent {
    fn last(&self) -> i64 {
        self.events.back().map_or(self.base, |e| e.seq)
    }
}

struct Waiter {
    principal: Arc<str>,
    prefix: String,
    caller: Caller,
    wake: Arc<Notify>,
}

/// The shared reader and its waiters.
pub(super) struct Tail {
    service: Arc<SecretService>,
    max_per_principal: usize,
    recent: RwLock<Option<Recent>>,
    waiters: Mutex<HashMap<u64, Waiter>>,
    next_id: std::sync::atomic::AtomicU64,
    reader: OnceLock<tokio::task::JoinHandle<()>>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.get() {
            reader.abort();
        }
    }
}

/// A registered waiter; deregistered when dropped.
pub(super) struct Registration {
    tail: Arc<Tail>,
    id: u64,
    wake: Arc<Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.tail
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Registration {
    /// Waits until the reader has read an event this waiter can see (or was asked
    /// to look again).
    pub(super) async fn notified(&self) {
        self.wake.notified().await;
    }

    /// The caller's policies changed: match new events with these.
    pub(super) fn update(&self, caller: &Caller) {
        if let Some(w) = self
            .tail
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&self.id)
        {
            w.caller = caller.clone();
        }
    }
}

impl Tail {
    pub(super) fn new(service: Arc<SecretService>, max_per_principal: usize) -> Self {
        Tail {
            service,
            max_per_principal: max_per_principal.max(1),
            recent: RwLock::new(None),
            waiters: Mutex::new(HashMap::new()),
            next_id: Default::default(),
            reader: OnceLock::new(),
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        self.service.store()
    }

    /// Registers a waiter for events under `prefix` that `caller` may see, starting
    /// the reader on first use. Refused past the per-principal cap.
    pub(super) async fn register(
        self: &Arc<Self>,
        caller: &Caller,
        prefix: &str,
    ) -> Result<Registration> {
        self.start().await?;
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let held = waiters
            .values()
            .filter(|w| &*w.principal == caller.name())
            .count();
        if held >= self.max_per_principal {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!(
                    "{} already has {held} open watches and long polls on this server, the most one principal may hold; close one first",
                    caller.name()
                ),
            ));
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        waiters.insert(
            id,
            Waiter {
                principal: caller.name().into(),
                prefix: prefix.to_string(),
                caller: caller.clone(),
                wake: wake.clone(),
            },
        );
        Ok(Registration {
            tail: self.clone(),
            id,
            wake,
        })
    }

    /// The events after `after` (at most a page), and whether the page is full:
    /// from memory when it holds them, else from the store.
    pub(super) async fn read(&self, after: i64) -> Result<(Vec<Event>, bool)> {
        {
            let recent = self.recent.read().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = recent.as_ref()
                && after >= r.base
            {
                let page: Vec<Event> = r
                    .events
                    .iter()
                    .filter(|e| e.seq > after)
                    .take(PAGE as usize)
                    .cloned()
                    .collect();
                let full = page.len() as i64 == PAGE;
                return Ok((page, full));
            }
        }
        let page = self.store().events(after, PAGE).await?;
        let full = page.len() as i64 == PAGE;
        Ok((page, full))
    }

    /// Starts the reader at the outbox's current end, once.
    async fn start(self: &Arc<Self>) -> Result<()> {
        if self.reader.get().is_some() {
            return Ok(());
        }
        let base = end_of(&*self.store()).await?;
        {
            let mut recent = self.recent.write().unwrap_or_else(|e| e.into_inner());
            if recent.is_none() {
                *recent = Some(Recent {
                    base,
                    events: VecDeque::new(),
                });
            }
        }
        let me = Arc::downgrade(self);
        let store = self.store();
        let _ = self.reader.set(tokio::spawn(async move {
            let mut feed = store.event_feed();
            loop {
                feed.borrow_and_update();
                let Some(tail) = me.upgrade() else { return };
                if let Err(e) = tail.catch_up().await {
                    tracing::warn!(error = %e, "cannot read the events outbox for watchers");
                    drop(tail);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                drop(tail);
                if feed.changed().await.is_err() {
                    return;
                }
            }
        }));
        Ok(())
    }

    /// Reads every event past the last one read, keeps it, and wakes the waiters
    /// that can see one.
    async fn catch_up(&self) -> Result<()> {
        loop {
            let last = self
                .recent
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map_or(0, Recent::last);
            let page = self.store().events(last, PAGE).await?;
            if page.is_empty() {
                return Ok(());
            }
            // A watcher reads what it hears about next: forget those secrets' cached
            // records first, or its read could beat the writer's own cache update
            // (or, with several nodes, this node's follower) and see the old value.
            self.service
                .forget_secrets(page.iter().filter_map(|e| e.secret.as_deref()));
            {
                let mut recent = self.recent.write().unwrap_or_else(|e| e.into_inner());
                if let Some(r) = recent.as_mut() {
                    for e in &page {
                        if e.seq > r.last() {
                            r.events.push_back(e.clone());
                        }
                    }
                    while r.events.len() > RECENT {
                        if let Some(old) = r.events.pop_front() {
                            r.base = old.seq;
                        }
                    }
                }
            }
            for w in self
                .waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
            {
                if page.iter().any(|e| visible(&w.caller, &w.prefix, e)) {
                    w.wake.notify_one();
                }
            }
            if (page.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }
}

/// The sequence number of the last committed event.
pub(super) async fn end_of(store: &dyn Store) -> Result<i64> {
    // The feed may trail a commit by a moment: read on from it to the end.
    let mut last = *store.event_feed().borrow();
    loop {
        let page = store.events(last, PAGE).await?;
        match page.last() {
            Some(e) => last = e.seq,
            None => return Ok(last),
        }
        if (page.len() as i64) < PAGE {
            return Ok(last);
        }
    }
}
