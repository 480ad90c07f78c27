//! The native `/v1` API's contract, written once: every endpoint's method, route,
//! operation name and the types of its query, body and answer. The server registers
//! its routes from it (so no route exists without its description), the client sends
//! requests through it, and `/v1/openapi.json` is generated from it ([`openapi`]).
//!
//! An endpoint is a unit type implementing [`Endpoint`], declared with [`endpoint!`]:
//!
//! ```
//! use rotor_api::{Endpoint, secrets};
//! let spec = secrets::GetSecretValue::spec();
//! assert_eq!(spec.route, "/v1/secrets/{*name}");
//! assert_eq!(spec.path(&["/app/db"]), "/v1/secrets/%2Fapp%2Fdb");
//! ```
//!
//! Times are RFC 3339 in UTC with milliseconds ([`Timestamp`]); secret values,
//! tokens and keys travel as [`Sensitive`], which never shows in `Debug`.

use chrono::{DateTime, Utc};
use schemars::generate::SchemaGenerator;
use schemars::{JsonSchema, Schema, json_schema};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

pub mod consumers;
pub mod events;
pub mod openapi;
pub mod replication;
pub mod rotation;
pub mod secrets;
pub mod sys;

/// An HTTP method of the native API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The method as HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// How the schema of one of an endpoint's types is produced.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// What a successful answer carries.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// A JSON document of the schema.
    Json(SchemaFn),
    /// No body (`204`).
    Empty,
    /// A stream of Server-Sent Events.
    EventStream,
}

/// One endpoint, as data: what the server routes and the OpenAPI document shows.
#[derive(Debug)]
pub struct Spec {
    /// Its method.
    pub method: Method,
    /// Its route as axum spells it: `{name}` one segment, `{*name}` the rest of the
    /// path (a secret name, which may hold `/`).
    pub route: &'static str,
    /// The operation name: metrics, audit log and the OpenAPI `operationId`.
    pub operation: &'static str,
    /// One line saying what it does.
    pub summary: &'static str,
    /// The status of a success.
    pub status: u16,
    /// Its query parameters (an object schema), if it takes any.
    pub query: Option<SchemaFn>,
    /// Its JSON body, if it takes one, and whether the body may be left out.
    pub body: Option<(SchemaFn, bool)>,
    /// What it answers.
    pub answer: Answer,
}

impl Spec {
    /// The route's parameters in order, without braces or `*`.
    pub fn params(&self) -> impl Iterator<Item = &'static str> {
        self.route.split('/').filter_map(|segment| {
            segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .map(|s| s.trim_start_matches('*'))
        })
    }

    /// The route as OpenAPI spells it (`{name}` for every parameter).
    pub fn openapi_path(&self) -> String {
        self.route.replace("{*", "{")
    }

    /// The path of a request, with `values` percent-encoded in place of the route's
    /// parameters, in order (`/` too, so a secret name is one segment).
    ///
    /// # Panics
    /// When `values` has fewer items than the route has parameters: a caller's bug.
    pub fn path(&self, values: &[&str]) -> String {
        let mut values = values.iter();
        self.route
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    let v = values.next().expect("a value for each route parameter");
                    Cow::Owned(encode(v))
                } else {
                    Cow::Borrowed(segment)
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Percent-encodes one path segment: everything but unreserved characters.
fn encode(value: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, SEGMENT).to_string()
}

/// An endpoint of the native API: its [`Spec`] and the types on the wire.
pub trait Endpoint {
    /// Its query parameters (`()` for none).
    type Query: Serialize + DeserializeOwned + Send + 'static;
    /// Its JSON body (`()` for none).
    type Body: Serialize + DeserializeOwned + Send + 'static;
    /// Its answer (`()` for none, or a stream).
    type Response: Serialize + DeserializeOwned + Send + 'static;
    /// Its description.
    fn spec() -> &'static Spec;
}

/// The schema of `T`, for a [`Spec`].
pub fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// Declares endpoints: a unit type for each, implementing [`Endpoint`].
///
/// ```ignore
/// endpoint! {
///     /// Create a secret.
///     CreateSecret: Post "/v1/secrets" => 201 json(Created), body NewSecret;
///     /// Remove a rule.
///     RemoveRule: Delete "/v1/replication/{name}" => 204 empty;
/// }
/// ```
#[macro_export]
macro_rules! endpoint {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident: $method:ident $route:literal => $status:literal $answer:ident $(($rty:ty))?
            $(, query $query:ty)? $(, body $body:ty)? $(, optional body $optbody:ty)?;
    )*) => {$(
        $(#[doc = $doc])+
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl $crate::Endpoint for $name {
            type Query = $crate::endpoint!(@ty $($query)?);
            type Body = $crate::endpoint!(@ty $($body)? $($optbody)?);
            type Response = $crate::endpoint!(@answer_ty $answer $($rty)?);
            fn spec() -> &'static $crate::Spec {
                static SPEC: $crate::Spec = $crate::Spec {
                    method: $crate::Method::$method,
                    route: $route,
                    operation: stringify!($name),
                    summary: concat!($($doc),+),
                    status: $status,
                    query: $crate::endpoint!(@schema $($query)?),
                    body: $crate::endpoint!(@body $(required $body)? $(optional $optbody)?),
                    answer: $crate::endpoint!(@answer $answer $($rty)?),
                };
                &SPEC
            }
        }
    )*};
    (@ty) => { () };
    (@ty $t:ty) => { $t };
    (@schema) => { None };
    (@schema $t:ty) => { Some($crate::schema_of::<$t>) };
    (@body) => { None };
    (@body required $t:ty) => { Some(($crate::schema_of::<$t>, false)) };
    (@body optional $t:ty) => { Some(($crate::schema_of::<$t>, true)) };
    (@answer_ty empty) => { () };
    (@answer_ty stream) => { () };
    (@answer_ty json $t:ty) => { $t };
    (@answer empty) => { $crate::Answer::Empty };
    (@answer stream) => { $crate::Answer::EventStream };
    (@answer json $t:ty) => { $crate::Answer::Json($crate::schema_of::<$t>) };
}

/// A point in time: RFC 3339 in UTC with milliseconds (`2026-12-04T05:01:40.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp(t)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| Timestamp(t.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "date-time"})
    }
}

/// A secret on the wire (a value, a token, a key): sent as a plain string, never
/// shown by `Debug`.
#[derive(Clone)]
pub struct Sensitive(SecretString);

impl Sensitive {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Sensitive(SecretString::from(secret.into()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The secret as `secrecy` holds it.
    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

impl From<SecretString> for Sensitive {
    fn from(s: SecretString) -> Self {
        Sensitive(s)
    }
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sensitive([redacted])")
    }
}

impl Serialize for Sensitive {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for Sensitive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SecretString::deserialize(d).map(Sensitive)
    }
}

impl JsonSchema for Sensitive {
    fn schema_name() -> Cow<'static, str> {
        "Sensitive".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string"})
    }
}

/// Every error of the native API: `{"error": {"type": ..., "message": ...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's type and message.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// Machine-readable: AWS's exception names (`ResourceNotFoundException`, ...),
    /// `BadRequestException`, `UnauthenticatedException`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For people.
    pub message: String,
}

/// The answer of a deletion that has nothing else to say.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Deleted {
    /// What was deleted.
    pub deleted: String,
}

/// No query parameters or body, where the type system wants one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// An optional field holding a JSON object, for `#[serde(default, deserialize_with =
/// "crate::optional_object")]`: serde's derived structs also accept an array of their
/// fields in order, which the documented shape (an object) does not allow.
pub(crate) fn optional_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::Deserialize as _;
    use serde::de::Error as _;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => serde_json::from_value(v)
            .map(Some)
            .map_err(D::Error::custom),
        Some(_) => Err(D::Error::custom("expected a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_each_parameter_as_one_segment() {
        let spec = sys::AttachPolicy::spec();
        assert_eq!(
            spec.path(&["svc/a", "read all"]),
            "/v1/sys/principals/svc%2Fa/policies/read%20all"
        );
        assert_eq!(spec.params().collect::<Vec<_>>(), ["name", "policy"]);
        assert_eq!(
            secrets::GetSecretValue::spec().openapi_path(),
            "/v1/secrets/{name}"
        );
    }

    #[test]
    fn timestamps_round_trip_with_milliseconds() {
        let t: Timestamp = serde_json::from_str("\"2026-12-04T05:01:40.123Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-12-04T05:01:40.123Z\""
        );
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn sensitive_values_stay_out_of_debug() {
        let s = Sensitive::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
    }
}
