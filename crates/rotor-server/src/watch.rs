//! Change events over HTTP (see [`rotor_engine::events`] for who sees what):
//!
//! - `GET /v1/watch?prefix=P&after=SEQ`: [Server-Sent Events], one per change
//!   (`id:` its sequence number, `event:` its kind, `data:` the event as JSON), with a
//!   keep-alive comment every 15 s. A client resumes with `after`, or with the
//!   `Last-Event-ID` header, which wins; without either it gets changes from now on.
//!   The stream acts for its token as it is now: each event is checked against the
//!   principal's current policies, and the stream ends once the token is revoked or
//!   expired. The `x-rotor-after` response header says where the stream starts.
//! - `GET /v1/events?prefix=P&after=SEQ&wait=SECONDS`: the same as a long poll, for
//!   clients without SSE: `{"events": [...], "last_seq": N}`, resuming after
//!   `last_seq`.
//! - `/v1/sys/subscriptions[/NAME[/deliveries]]`: webhooks and redeploy hooks
//!   (`admin` on `sys/subscriptions/NAME`); a webhook's signing key is in the answer
//!   that creates it, only.
//!
//! [Server-Sent Events]: https://html.spec.whatwg.org/multipage/server-sent-events.html

use crate::App;
use crate::auth::Routes;
use crate::error::NativeError;
use crate::extract::{Body, Params};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rotor_api::events as api;
use rotor_api::{Deleted, Sensitive};
use rotor_engine::events::{
    self, Delivery, Event, Events, NewSubscription, SubscriptionInfo, Target,
};
use rotor_engine::{Caller, Session};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

type Result<T> = std::result::Result<T, NativeError>;

/// How long one wait of a watch stream lasts before it looks again.
const STREAM_WAIT: Duration = Duration::from_secs(30);

/// The keep-alive comment interval of a watch stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The event and subscription routes.
pub(crate) fn routes() -> Routes {
    Routes::new()
        .at::<api::Watch, _, _>(watch)
        .at::<api::ListEvents, _, _>(poll)
        .at::<api::ListSubscriptions, _, _>(list_subscriptions)
        .at::<api::CreateSubscription, _, _>(create_subscription)
        .at::<api::DescribeSubscription, _, _>(get_subscription)
        .at::<api::DeleteSubscription, _, _>(delete_subscription)
        .at::<api::ListDeliveries, _, _>(deliveries)
}

/// Where a watch starts: `Last-Event-ID`, else `after`, else now.
async fn start(events: &Events, headers: &HeaderMap, after: Option<i64>) -> Result<i64> {
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    NativeError::bad_request("Last-Event-ID must be an event's sequence number")
                })?,
        ),
        None => None,
    };
    let after = match resume.or(after) {
        Some(a) => a,
        None => events.last_seq().await?,
    };
    if after < 0 {
        return Err(NativeError::bad_request(
            "after must be a sequence number (0 or more)",
        ));
    }
    Ok(after)
}

/// A session for the bearer token of this (already authenticated) request.
fn session(app: &App, headers: &HeaderMap) -> Result<Session> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(NativeError::unauthenticated)?;
    Ok(app.access.session(token)?)
}

/// The state of one watch stream.
struct Stream {
    events: Arc<Events>,
    session: Session,
    prefix: String,
    after: i64,
    pending: VecDeque<Event>,
    opened: bool,
}

fn sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.seq.to_string())
        .event(&event.kind)
        .data(serde_json::to_string(&events::event_out(event)).unwrap_or_default())
}

async fn watch(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Params(q): Params<api::WatchQuery>,
) -> Result<Response> {
    let session = session(&app, &headers)?;
    let after = start(&app.events, &headers, q.after).await?;
    let state = Stream {
        events: app.events.clone(),
        session,
        prefix: q.prefix,
        after,
        pending: VecDeque::new(),
        opened: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if !s.opened {
            // Sent at once, so the client knows the stream is open and from where.
            s.opened = true;
            let hello = SseEvent::default().comment(format!("watching after {}", s.after));
            return Some((Ok::<_, std::convert::Infallible>(hello), s));
        }
        loop {
            if let Some(e) = s.pending.pop_front() {
                // Checked again as it goes out: a revoked token ends the stream.
                match s.events.recheck(&mut s.session, &s.prefix, e) {
                    Ok(Some(e)) => return Some((Ok(sse(&e)), s)),
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::info!(reason = %e.message, "watch stream closed");
                        return None;
                    }
                }
            }
            match s
                .events
                .next_batch(&mut s.session, &s.prefix, s.after, STREAM_WAIT)
                .await
            {
                Ok(batch) => {
                    s.after = batch.last;
                    s.pending.extend(batch.events);
                    if s.pending.is_empty() && s.events.is_closed() {
                        // The server is draining: the client resumes elsewhere.
                        return None;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "watch stream ended");
                    return None;
                }
            }
        }
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    let headers = response.headers_mut();
    // Tells proxies such as nginx not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert("x-rotor-after", HeaderValue::from(after));
    Ok(response)
}

async fn poll(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Params(q): Params<api::PollQuery>,
) -> Result<Json<api::EventList>> {
    let mut session = session(&app, &headers)?;
    let after = start(&app.events, &headers, q.after).await?;
    let wait = Duration::from_secs(q.wait).min(events::MAX_WAIT);
    let batch = app
        .events
        .next_batch(&mut session, &q.prefix, after, wait)
        .await?;
    Ok(Json(api::EventList {
        events: batch.events.iter().map(events::event_out).collect(),
        last_seq: batch.last,
    }))
}

fn subscription_out(s: &SubscriptionInfo, signing_key: Option<Sensitive>) -> api::Subscription {
    api::Subscription {
        name: s.name.clone(),
        prefix: s.prefix.clone(),
        kinds: s.kinds.clone(),
        kind: s.target.kind().into(),
        target: serde_json::to_value(&s.target).unwrap_or_default(),
        cursor: s.cursor,
        created: s.created.into(),
        created_by: s.created_by.clone(),
        signing_key,
    }
}

fn delivery_out(d: &Delivery) -> api::Delivery {
    api::Delivery {
        id: d.id,
        seq: d.seq,
        attempt: d.attempt,
        status: d.status.clone(),
        at: d.at.into(),
        error: d.error.clone(),
    }
}

async fn create_subscription(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(req): Body<api::NewSubscription>,
) -> Result<(StatusCode, Json<api::Subscription>)> {
    let timeout_ms = req.timeout_ms.unwrap_or(events::DEFAULT_TIMEOUT_MS);
    let target = match (req.url, req.command) {
        (Some(url), None) => Target::Webhook { url, timeout_ms },
        (None, Some(command)) => Target::Exec {
            command,
            timeout_ms,
        },
        _ => {
            return Err(NativeError::bad_request(
                "Give either url (a webhook) or command (a local command), not both",
            ));
        }
    };
    let (info, key) = app
        .events
        .create_subscription(
            &caller,
            NewSubscription {
                name: req.name,
                prefix: req.prefix,
                kinds: req.kinds,
                target,
                from_seq: req.from_seq,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(subscription_out(&info, key.map(Sensitive::from))),
    ))
}

async fn list_subscriptions(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<api::SubscriptionList>> {
    let all = app.events.subscriptions(&caller).await?;
    Ok(Json(api::SubscriptionList {
        subscriptions: all.iter().map(|s| subscription_out(s, None)).collect(),
    }))
}

async fn get_subscription(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<api::Subscription>> {
    let s = app.events.subscription(&caller, &name).await?;
    Ok(Json(subscription_out(&s, None)))
}

async fn delete_subscription(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>> {
    app.events.delete_subscription(&caller, &name).await?;
    Ok(Json(Deleted { deleted: name }))
}

async fn deliveries(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Params(q): Params<api::DeliveriesQuery>,
) -> Result<Json<api::DeliveryList>> {
    let log = app
        .events
        .deliveries(&caller, &name, q.limit, q.dead)
        .await?;
    Ok(Json(api::DeliveryList {
        subscription: name,
        deliveries: log.iter().map(delivery_out).collect(),
    }))
}
