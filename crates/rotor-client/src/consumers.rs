//! Consumer acknowledgements: reporting which version of a secret a consumer has in
//! use, and listing a secret's consumers.

use crate::{Client, ClientError};
use reqwest::Method;
use serde_json::{Value, json};

impl Client {
    /// Reports that `consumer` has version `version_id` of secret `name` in use.
    pub async fn acknowledge(
        &self,
        consumer: &str,
        name: &str,
        version_id: &str,
    ) -> Result<Value, ClientError> {
        let body = json!({"consumer": consumer, "secret": name, "version_id": version_id});
        self.call(Method::POST, self.url("consumers", None), &[], Some(body))
            .await
    }

    /// The latest report of each consumer of secret `name`:
    /// `{name, current_version, consumers: [{consumer, version_id, stages, current, host, at, seq}], complete, scan_limit}`.
    pub async fn consumers(&self, name: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, self.url("consumers", Some(name)), &[], None)
            .await
    }
}
