//! A real HTTP receiver for the webhooks Rotor sends (event subscriptions, webhook
//! rotators): it keeps every request and answers as the test says (200, a failure,
//! a redirect, or whatever a handler decides).

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The request line, as `POST /path`.
    pub line: String,
    /// The header lines, lower-cased, one per line (`name: value`).
    pub headers: String,
    /// The body.
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    /// The value of header `name` (lower case), or `""`.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// How the receiver answers.
pub enum Answer {
    /// 200 to everything.
    Ok,
    /// 500 to the first `n` requests, then 200.
    FailFirst(usize),
    /// 500 to everything.
    Down,
    /// 307 to `location`.
    Redirect(String),
    /// What the handler returns, for each request.
    Handler(Box<dyn FnMut(&Received) -> u16 + Send>),
}

struct State {
    answer: Answer,
    got: Vec<Received>,
}

/// A receiver on `127.0.0.1`, on a free port, until dropped (its thread then
/// serves no one).
pub struct WebhookReceiver {
    url: String,
    state: Arc<Mutex<State>>,
}

impl WebhookReceiver {
    /// Starts a receiver that answers 200.
    pub fn start() -> anyhow::Result<Self> {
        Self::on(TcpListener::bind("127.0.0.1:0")?)
    }

    /// Starts a receiver on `listener` (a port a test needs again, say).
    pub fn on(listener: TcpListener) -> anyhow::Result<Self> {
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State {
            answer: Answer::Ok,
            got: Vec::new(),
        }));
        let weak = Arc::downgrade(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Some(state) = weak.upgrade() else { return };
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Ok(WebhookReceiver { url, state })
    }

    /// `http://127.0.0.1:PORT`, without a path: any path is accepted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How to answer from now on.
    pub fn answer(&self, answer: Answer) {
        self.lock().answer = answer;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.lock().got.clone()
    }

    /// The JSON bodies of the requests answered 2xx, in arrival order.
    pub fn accepted_json(&self) -> Vec<serde_json::Value> {
        self.lock()
            .got
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(Received::json)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(mut received) = read_request(&mut stream) else {
        return;
    };
    let (status, extra) = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let answer = match &mut state.answer {
            Answer::Ok => (200, String::new()),
            Answer::Down => (500, String::new()),
            Answer::FailFirst(0) => (200, String::new()),
            Answer::FailFirst(n) => {
                *n -= 1;
                (500, String::new())
            }
            Answer::Redirect(location) => (307, format!("location: {location}\r\n")),
            Answer::Handler(handler) => (handler(&received), String::new()),
        };
        received.status = answer.0;
        state.got.push(received);
        answer
    };
    let _ = stream.write_all(
        format!("HTTP/1.1 {status} Test\r\n{extra}content-length: 0\r\nconnection: close\r\n\r\n")
            .as_bytes(),
    );
}

fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let (line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
            let headers = headers.replace("\r\n", "\n").to_lowercase();
            let len: usize = headers
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let line = line.rsplit_once(' ').map_or(line, |(l, _)| l).to_string();
            return Some(Received {
                line,
                headers,
                body: buf[end + 4..end + 4 + len].to_vec(),
                status: 0,
            });
        }
    }
}
