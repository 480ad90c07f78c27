//! Change events: the watch stream (Server-Sent Events), the long poll, and
//! subscriptions (webhooks and redeploy hooks).

use crate::{Client, ClientError};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
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
    queue: VecDeque<Value>,
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
    /// The next event (`{seq, at, kind, secret, detail}`), waiting for it; `None` when
    /// the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<Value>, ClientError> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                if let Some(seq) = event["seq"].as_i64() {
                    self.last_seq = seq;
                }
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
                let event: Value =
                    serde_json::from_str(&message.data).map_err(|e| ClientError::Transport {
                        addr: self.addr.clone(),
                        reason: format!("an event is not JSON: {e}"),
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

/// The error a failed response carries.
async fn failure(addr: &str, resp: reqwest::Response) -> ClientError {
    let status = resp.status();
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => {
            return ClientError::Transport {
                addr: addr.to_string(),
                reason: e.to_string(),
            };
        }
    };
    let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let kind = doc["error"]["type"].as_str().unwrap_or(match status {
        StatusCode::UNAUTHORIZED => "UnauthenticatedException",
        _ => "HttpError",
    });
    ClientError::Api {
        status: status.as_u16(),
        kind: kind.to_string(),
        message: doc["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}")),
    }
}

impl Client {
    /// Watches changes to secrets under `prefix` (all when empty) that the token may
    /// describe: the events after `after`, or from now on when `None`.
    pub async fn watch(&self, prefix: &str, after: Option<i64>) -> Result<Watch, ClientError> {
        let mut q = vec![("prefix", prefix.to_string())];
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        let resp = self
            .http
            .request(Method::GET, self.url("watch", None))
            .bearer_auth(self.token.expose_secret())
            .header("accept", "text/event-stream")
            .query(&q)
            .send()
            .await
            .map_err(|e| ClientError::Transport {
                addr: self.addr.clone(),
                reason: e.to_string(),
            })?;
        if !resp.status().is_success() {
            return Err(failure(&self.addr, resp).await);
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
    /// to `wait_secs` for one: `{"events": [...], "last_seq": N}`.
    pub async fn events(
        &self,
        prefix: &str,
        after: Option<i64>,
        wait_secs: u64,
    ) -> Result<Value, ClientError> {
        let mut q = vec![
            ("prefix", prefix.to_string()),
            ("wait", wait_secs.to_string()),
        ];
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        self.call(Method::GET, self.url("events", None), &q, None)
            .await
    }

    /// Creates a subscription. A webhook's answer holds its `signing_key`, shown
    /// only this once.
    pub async fn create_subscription(&self, new: &NewSubscription) -> Result<Value, ClientError> {
        let mut body = json!({"name": new.name, "prefix": new.prefix, "kinds": new.kinds,
                              "timeout_ms": new.timeout_ms, "from_seq": new.from_seq});
        match &new.target {
            HookTarget::Url(url) => body["url"] = json!(url),
            HookTarget::Command(argv) => body["command"] = json!(argv),
        }
        self.call(Method::POST, self.sys_url("subscriptions"), &[], Some(body))
            .await
    }

    /// Lists subscriptions.
    pub async fn list_subscriptions(&self) -> Result<Value, ClientError> {
        self.call(Method::GET, self.sys_url("subscriptions"), &[], None)
            .await
    }

    /// Shows a subscription and its cursor (never its signing key).
    pub async fn subscription(&self, name: &str) -> Result<Value, ClientError> {
        self.call(
            Method::GET,
            self.sys_url(&format!("subscriptions/{}", Self::enc(name))),
            &[],
            None,
        )
        .await
    }

    /// Deletes a subscription and its delivery log.
    pub async fn delete_subscription(&self, name: &str) -> Result<Value, ClientError> {
        self.call(
            Method::DELETE,
            self.sys_url(&format!("subscriptions/{}", Self::enc(name))),
            &[],
            None,
        )
        .await
    }

    /// A subscription's last `limit` delivery attempts, newest first; only
    /// dead-lettered events with `dead_only`.
    pub async fn deliveries(
        &self,
        name: &str,
        limit: i64,
        dead_only: bool,
    ) -> Result<Value, ClientError> {
        self.call(
            Method::GET,
            self.sys_url(&format!("subscriptions/{}/deliveries", Self::enc(name))),
            &[
                ("limit", limit.to_string()),
                ("dead", dead_only.to_string()),
            ],
            None,
        )
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
