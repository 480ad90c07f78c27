//! Smoke test with the AWS SDK for Rust (`aws-sdk-secretsmanager`, default features
//! off, plain-HTTP connector): the SDK's own SigV4 signing, request shapes and error
//! parsing work against the server unchanged.

use crate::harness::{self, dev};
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::primitives::Blob;

#[test]
fn aws_sdk_for_rust_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(dir.path());
    let rt = harness::runtime();
    rt.block_on(async {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .endpoint_url(&server.url)
            .credentials_provider(Credentials::new(
                harness::AKID,
                harness::SECRET_KEY,
                None,
                None,
                "test",
            ))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        let sm = aws_sdk_secretsmanager::Client::from_conf(config);
        let created = sm
            .create_secret()
            .name("sdk/db")
            .secret_string("first")
            .send()
            .await
            .unwrap();
        assert!(
            created
                .arn()
                .unwrap()
                .starts_with("arn:aws:secretsmanager:eu-central-1:123456789012:secret:sdk/db-")
        );
        sm.put_secret_value()
            .secret_id("sdk/db")
            .secret_binary(Blob::new(vec![0u8, 255, 7]))
            .send()
            .await
            .unwrap();
        let current = sm
            .get_secret_value()
            .secret_id("sdk/db")
            .send()
            .await
            .unwrap();
        assert_eq!(current.secret_binary().unwrap().as_ref(), &[0u8, 255, 7]);
        let previous = sm
            .get_secret_value()
            .secret_id(created.arn().unwrap())
            .version_stage("AWSPREVIOUS")
            .send()
            .await
            .unwrap();
        assert_eq!(previous.secret_string(), Some("first"));
        let described = sm
            .describe_secret()
            .secret_id("sdk/db")
            .send()
            .await
            .unwrap();
        assert_eq!(described.version_ids_to_stages().unwrap().len(), 2);
        let err = sm
            .get_secret_value()
            .secret_id("sdk/missing")
            .send()
            .await
            .unwrap_err();
        let service_err = err.into_service_error();
        assert!(
            service_err.is_resource_not_found_exception(),
            "{service_err:?}"
        );

        let wrong = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&server.url)
            .credentials_provider(Credentials::new(
                harness::AKID,
                "wrong-secret",
                None,
                None,
                "test",
            ))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        let err = aws_sdk_secretsmanager::Client::from_conf(wrong)
            .list_secrets()
            .send()
            .await
            .unwrap_err();
        let code = err.into_service_error().meta().code().map(str::to_string);
        assert_eq!(code.as_deref(), Some("InvalidSignatureException"));
    });
}
