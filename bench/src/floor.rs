//! The HTTP floor: a bare axum server answering every request with a fixed JSON body of
//! the size of Rotor's native read response. Runs in its own process and runtime.

use anyhow::{Context, Result};
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::serve::ListenerExt;
use hyper::body::Bytes;
use std::net::SocketAddr;

/// A JSON string of exactly `size` bytes (at least `""`).
fn body(size: usize) -> Bytes {
    let inner = size.saturating_sub(2);
    let mut s = String::with_capacity(size.max(2));
    s.push('"');
    s.extend(std::iter::repeat_n('x', inner));
    s.push('"');
    Bytes::from(s)
}

pub fn run(listen: SocketAddr, body_size: usize) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async move {
        let body = body(body_size);
        let app = Router::new().fallback(move || {
            let body = body.clone();
            async move { ([(CONTENT_TYPE, "application/json")], body).into_response() }
        });
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("bind {listen}"))?;
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        println!("floor listening on http://{addr}");
        axum::serve(listener, app).await.context("serve")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_has_the_requested_size() {
        for n in [0, 1, 2, 3, 200] {
            assert_eq!(super::body(n).len(), n.max(2));
        }
    }
}
