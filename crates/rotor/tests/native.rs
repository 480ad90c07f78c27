//! The native `/v1` API over HTTP: typed errors for bad input (and nothing stored
//! changes), the OpenAPI document, health, readiness and metrics.

use crate::harness::{self, client, dev, runtime, text};
use serde_json::Value;

#[test]
fn bad_input_gets_typed_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = runtime();
    rt.block_on(async {
        let c = client(&server);
        c.create("n/keep", Some(&text("kept")), None, &[], Some("v1"))
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let url = |p: &str| format!("{}{p}", server.url);
        let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
            (
                http.put(url("/v1/secrets/n%2Fkeep")).body("{not json"),
                400,
                "BadRequestException",
            ),
            (
                http.put(url("/v1/secrets/n%2Fkeep"))
                    .header("content-type", "application/json")
                    .body("{not json"),
                400,
                "BadRequestException",
            ),
            (
                http.put(url("/v1/secrets/n%2Fkeep"))
                    .json(&serde_json::json!({"value": 5})),
                400,
                "BadRequestException",
            ),
            (
                http.put(url("/v1/secrets/n%2Fkeep"))
                    .json(&serde_json::json!({"value_base64": "***"})),
                400,
                "BadRequestException",
            ),
            (
                http.put(url("/v1/secrets/n%2Fkeep"))
                    .json(&serde_json::json!({"value": "x".repeat(65_537)})),
                400,
                "ValidationException",
            ),
            (
                http.put(url("/v1/secrets/n%2Fkeep"))
                    .json(&serde_json::json!({"value": "other", "version_id": "v1"})),
                409,
                "ResourceExistsException",
            ),
            (
                http.post(url("/v1/secrets"))
                    .json(&serde_json::json!({"name": "bad name!"})),
                400,
                "ValidationException",
            ),
            (
                http.get(url("/v1/secrets/n%2Fkeep?stage=nope")),
                404,
                "ResourceNotFoundException",
            ),
            (
                http.delete(url("/v1/secrets/n%2Fkeep?recovery_window_days=3")),
                400,
                "InvalidParameterException",
            ),
            (
                http.get(url("/v1/secrets?max_results=abc")),
                400,
                "BadRequestException",
            ),
            (http.get(url("/v1/nowhere")), 404, "NotFoundException"),
        ];
        for (req, status, kind) in cases {
            let resp = req.bearer_auth(harness::TOKEN).send().await.unwrap();
            let got = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (got, body["error"]["type"].as_str()),
                (status, Some(kind)),
                "{body}"
            );
        }
        let unauthenticated = http.get(url("/v1/secrets/n%2Fkeep")).send().await.unwrap();
        assert_eq!(unauthenticated.status().as_u16(), 401);
        let v = c.get_value("n/keep", None, None).await.unwrap();
        assert_eq!(
            (harness::value_of(&v), v.version_id.as_str()),
            ("kept", "v1")
        );
        assert_eq!(c.versions("n/keep", true).await.unwrap().versions.len(), 1);
    });
}

#[test]
fn openapi_health_readiness_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = runtime();
    rt.block_on(async {
        let get = |p: &str| reqwest::get(format!("{}{p}", server.url));
        let doc: Value = get("/v1/openapi.json").await.unwrap().json().await.unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/v1/secrets",
            "/v1/secrets/{name}",
            "/v1/versions/{name}",
            "/v1/stages/{name}",
            "/v1/password",
            "/v1/sys/principals",
            "/v1/sys/policies/{name}",
            "/v1/sys/tokens",
            "/v1/sys/access-keys",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} documented");
        }
        assert_eq!(get("/healthz").await.unwrap().status().as_u16(), 200);
        assert_eq!(get("/readyz").await.unwrap().status().as_u16(), 200);
        client(&server)
            .create("m/x", Some(&text("v")), None, &[], None)
            .await
            .unwrap();
        let _ = client(&server).get_value("m/missing", None, None).await;
        let metrics = get("/metrics").await.unwrap().text().await.unwrap();
        assert!(
            metrics.contains(
                r#"rotor_requests_total{api="native",operation="CreateSecret",status="2xx"} 1"#
            ),
            "{metrics}"
        );
        assert!(
            metrics.contains(
                r#"rotor_requests_total{api="native",operation="GetSecretValue",status="4xx"} 1"#
            ),
            "{metrics}"
        );
        assert!(metrics.contains("rotor_request_duration_seconds"));
    });
}
