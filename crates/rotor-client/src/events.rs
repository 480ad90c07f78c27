//! Change events: the watch stream (Server-Sent Events), the long poll, and
//! subscriptions (webhooks and redeploy hooks).

use crate::{Client, ClientError, api_error};
use rotor_api::Deleted;
use rotor_api::events::{self as api, Event};
use std::collections::VecDeque;

/// Where a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookTarget {
    /// POST each event, signed, to this URL.
    Url(String),
    /// Run this command (program and arguments) with each event on standard input.
    Command(Vec<String>),
}

/// A subscription to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    /// 1 to 64 letters, digits, `-` or `_`.
    pub name: String,
    /// Secrets whose name starts with this; empty for all.
    pub prefix: String,
    /// Event kinds, or families as `rotation.*`; empty for all.
    pub kinds: Vec<String>,
    /// Where to deliver.
    pub target: HookTarget,
    /// Longest a delivery may take, in milliseconds (the server's default when `None`).
    pub timeout_ms: Option<u64>,
    /// Deliver the events after this sequence number; from now on when `None`.
    pub from_seq: Option<i64>,
}

/// One message of a Server-Sent Events stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Message {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// Splits a Server-Sent Events byte stream into messages, whatever the chunking.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    current: Message,
    has_data: bool,
}

impl SseParser {
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<Message> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                let message = std::mem::take(&mut self.current);
                if std::mem::take(&mut self.has_data) {
                    out.push(message);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                "event" => self.current.event = Some(value.to_string()),
                "id" => self.current.id = Some(value.to_string()),
                _ => {}
            }
        }
        out
    }
}

/// A stream of change events from `GET /v1/watch`. Reconnecting is the caller's
/// concern: [`Watch::last_seq`] says where to resume.
pub struct Watch {
    response: reqwest::Response,
    parser: SseParser,
    queue: VecDeque<Event>,
    last_seq: i64,
    addr: String,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("addr", &self.addr)
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// The next event, waiting for it; `None` when the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                self.last_seq = event.seq;
                return Ok(Some(event));
            }
            let chunk = self
                .response
                .chunk()
                .await
                .map_err(|e| ClientError::Transport {
                    addr: self.addr.clone(),
                    reason: e.to_string(),
                })?;
            let Some(chunk) = chunk else {
                return Ok(None);
            };
            for message in self.parser.push(&chunk) {
                let event: Event =
                    serde_json::from_str(&message.data).map_err(|e| ClientError::Transport {
                        addr: self.addr.clone(),
                        reason: format!("an unreadable event: {e}"),
                    })?;
                self.queue.push_back(event);
            }
        }
    }

    /// The sequence number to resume after: the last event returned, or where the
    /// watch started.
    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }
}

impl Client {
    /// Watches changes to secrets under `prefix` (all when empty) that the token may
    /// describe: the events after `after`, or from now on when `None`.
    pub async fn watch(&self, prefix: &str, after: Option<i64>) -> Result<Watch, ClientError> {
        let query = api::WatchQuery {
            prefix: prefix.to_string(),
            after,
        };
        let resp = self
            .request::<api::Watch>(&[])
            .header("accept", "text/event-stream")
            .query(&query)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.map_err(|e| self.transport(e))?;
            return Err(api_error(status, &body));
        }
        let started = resp
            .headers()
            .get("x-rotor-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .or(after)
            .unwrap_or(0);
        Ok(Watch {
            response: resp,
            parser: SseParser::default(),
            queue: VecDeque::new(),
            last_seq: started,
            addr: self.addr.clone(),
        })
    }

    /// The changes after `after` (from now on when `None`) under `prefix`, waiting up
    /// to `wait_secs` for one.
    pub async fn events(
        &self,
        prefix: &str,
        after: Option<i64>,
        wait_secs: u64,
    ) -> Result<api::EventList, ClientError> {
        let query = api::PollQuery {
            prefix: prefix.to_string(),
            after,
            wait: wait_secs,
        };
        self.send::<api::ListEvents>(&[], Some(&query), None).await
    }

    /// Creates a subscription. A webhook's answer holds its `signing_key`, shown
    /// only this once.
    pub async fn create_subscription(
        &self,
        new: &NewSubscription,
    ) -> Result<api::Subscription, ClientError> {
        let (url, command) = match &new.target {
            HookTarget::Url(url) => (Some(url.clone()), None),
            HookTarget::Command(argv) => (None, Some(argv.clone())),
        };
        let body = api::NewSubscription {
            name: new.name.clone(),
            prefix: new.prefix.clone(),
            kinds: new.kinds.clone(),
            url,
            command,
            timeout_ms: new.timeout_ms,
            from_seq: new.from_seq,
        };
        self.send::<api::CreateSubscription>(&[], None, Some(&body))
            .await
    }

    /// Lists subscriptions.
    pub async fn list_subscriptions(&self) -> Result<api::SubscriptionList, ClientError> {
        self.send::<api::ListSubscriptions>(&[], None, None).await
    }

    /// Shows a subscription and its cursor (never its signing key).
    pub async fn subscription(&self, name: &str) -> Result<api::Subscription, ClientError> {
        self.send::<api::DescribeSubscription>(&[name], None, None)
            .await
    }

    /// Deletes a subscription and its delivery log.
    pub async fn delete_subscription(&self, name: &str) -> Result<Deleted, ClientError> {
        self.send::<api::DeleteSubscription>(&[name], None, None)
            .await
    }

    /// A subscription's last `limit` delivery attempts, newest first; only
    /// dead-lettered events with `dead_only`.
    pub async fn deliveries(
        &self,
        name: &str,
        limit: i64,
        dead_only: bool,
    ) -> Result<api::DeliveryList, ClientError> {
        let query = api::DeliveriesQuery {
            limit,
            dead: dead_only,
        };
        self.send::<api::ListDeliveries>(&[name], Some(&query), None)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_any_chunking() {
        let stream = b": watching after 3\n\nid: 4\nevent: version.put\ndata: {\"seq\":4}\n\n: keep-alive\n\nid: 5\r\nevent: label.moved\r\ndata: {\"seq\":\r\ndata: 5}\r\n\r\n";
        for size in 1..stream.len() {
            let mut p = SseParser::default();
            let got: Vec<Message> = stream.chunks(size).flat_map(|c| p.push(c)).collect();
            assert_eq!(
                got,
                [
                    Message {
                        id: Some("4".into()),
                        event: Some("version.put".into()),
                        data: "{\"seq\":4}".into()
                    },
                    Message {
                        id: Some("5".into()),
                        event: Some("label.moved".into()),
                        data: "{\"seq\":\n5}".into()
                    },
                ],
                "chunks of {size}"
            );
        }
    }
}
