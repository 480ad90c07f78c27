//! Watching: the events after a sequence number that a session may see, waiting
//! for them through the one reader of the outbox ([`super::tail`]).

use super::{Batch, Events, MAX_WAIT, redacted, same_policies, visible};
use crate::access::Session;
use rotor_core::Result;
use rotor_store::Event;
use std::time::Duration;

impl Events {
    /// The events after `after` about secrets under `prefix` that the session's
    /// caller may see (at most a few hundred), waiting up to `wait` (at most
    /// [`MAX_WAIT`]) for one when there are none yet. An empty batch means none came
    /// in time (or the events were closed); either way the caller resumes after
    /// [`Batch::last`]. The session is checked again whenever access changes: a
    /// revoked or expired token ends the wait with `Unauthenticated`, and a changed
    /// policy changes what is visible at once.
    pub async fn next_batch(
        &self,
        session: &mut Session,
        prefix: &str,
        after: i64,
        wait: Duration,
    ) -> Result<Batch> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let mut closed = self.closed.subscribe();
        let mut access = self.access.changes();
        let mut caller = self.access.check(session)?.clone();
        // Registered before the first read, so an event committed after it wakes us.
        let waiting = self.tail.register(&caller, prefix).await?;
        let mut after = after.max(0);
        loop {
            access.borrow_and_update();
            let now = self.access.check(session)?;
            if !same_policies(now, &caller) {
                caller = now.clone();
                waiting.update(&caller);
            }
            let (page, full) = self.tail.read(after).await?;
            if let Some(e) = page.last() {
                after = e.seq;
            }
            let events: Vec<Event> = page
                .into_iter()
                .filter(|e| visible(&caller, prefix, e))
                .map(|e| redacted(&caller, e))
                .collect();
            if !events.is_empty() {
                return Ok(Batch {
                    events,
                    last: after,
                });
            }
            if full {
                continue;
            }
            let waited = tokio::select! {
                () = waiting.notified() => true,
                changed = access.changed() => changed.is_ok(),
                _ = tokio::time::sleep_until(deadline) => false,
                _ = closed.wait_for(|c| *c) => false,
            };
            if !waited {
                return Ok(Batch {
                    events: Vec::new(),
                    last: after,
                });
            }
        }
    }

    /// Checks a watch's session again before it shows `event`: `Ok(None)` when the
    /// caller may no longer see it, an error when the session has ended.
    pub fn recheck(
        &self,
        session: &mut Session,
        prefix: &str,
        event: Event,
    ) -> Result<Option<Event>> {
        let caller = self.access.check(session)?;
        Ok(visible(caller, prefix, &event).then(|| redacted(caller, event)))
    }
}
