//! Consumer acknowledgements: reporting which version of a secret a consumer has in
//! use, and listing a secret's consumers.

use crate::{Client, ClientError};
use rotor_api::consumers as api;

impl Client {
    /// Reports that `consumer` has version `version_id` of secret `name` in use.
    pub async fn acknowledge(
        &self,
        consumer: &str,
        name: &str,
        version_id: &str,
    ) -> Result<api::Acknowledged, ClientError> {
        let body = api::Acknowledgement {
            consumer: consumer.to_string(),
            secret: name.to_string(),
            version_id: version_id.to_string(),
        };
        self.send::<api::AcknowledgeVersion>(&[], None, Some(&body))
            .await
    }

    /// The latest report of each consumer of secret `name`, and whether it is current.
    pub async fn consumers(&self, name: &str) -> Result<api::ConsumerList, ClientError> {
        self.send::<api::ListConsumers>(&[name], None, None).await
    }
}
