//! The rotator registry: registering, listing and removing named rotators
//! (`admin` on `sys/rotators/NAME`, and `exec` for one that runs commands).

use super::*;

impl Rotations {
    pub(super) async fn rotator_row(&self, name: &str) -> Result<RotatorRow> {
        self.store()
            .rotators()
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| {
                Error::invalid_request(format!(
                    "Rotor has no rotator named {name}; create it with `rotor rotator create {name}`"
                ))
            })
    }

    /// Registers a rotator. Returns the webhook signing key, shown only this once.
    pub async fn create_rotator(
        &self,
        caller: &Caller,
        name: &str,
        kind: &str,
        config: serde_json::Value,
        replace: bool,
    ) -> Result<Option<String>> {
        rotators::validate_name(name)?;
        caller.authorize(Capability::Admin, &rotator_path(name))?;
        if runs_commands(kind) {
            // Running a command on the server is a right of its own.
            caller.authorize(Capability::Exec, &rotator_path(name))?;
        }
        let config = rotators::validate(kind, config)?;
        let (key, shown) = if kind == "webhook" {
            let key = rotor_crypto::random::token("whk_");
            let sealed = self
                .service
                .envelope()
                .seal(rotators::KEY_AAD, name, key.as_bytes())
                .map_err(|_| Error::internal("encryption failed"))?;
            (
                Some(SealedValue {
                    ciphertext: sealed.ciphertext,
                    wrapped_key: sealed.wrapped_key,
                    algorithm: sealed.algorithm,
                    key_id: sealed.key_id,
                    digest: Vec::new(),
                }),
                Some(key),
            )
        } else {
            (None, None)
        };
        let row = RotatorRow {
            name: name.to_string(),
            kind: kind.to_string(),
            config: config.to_string(),
            key,
            created: self.now(),
            created_by: Some(caller.name().to_string()),
        };
        self.store()
            .apply(
                Mutation::PutRotator {
                    rotator: row,
                    replace,
                },
                self.now(),
            )
            .await?;
        Ok(shown)
    }

    /// Every rotator the caller may see.
    pub async fn rotators(&self, caller: &Caller) -> Result<Vec<RotatorInfo>> {
        Ok(self
            .store()
            .rotators()
            .await?
            .into_iter()
            .filter(|r| caller.may(Capability::Admin, &rotator_path(&r.name)))
            .map(RotatorInfo::from)
            .collect())
    }

    /// One rotator.
    pub async fn rotator(&self, caller: &Caller, name: &str) -> Result<RotatorInfo> {
        caller.authorize(Capability::Admin, &rotator_path(name))?;
        self.rotator_row(name)
            .await
            .map(RotatorInfo::from)
            .map_err(|_| Error::not_found(format!("No rotator named {name} exists")))
    }

    /// Removes a rotator.
    pub async fn delete_rotator(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.authorize(Capability::Admin, &rotator_path(name))?;
        self.store()
            .apply(
                Mutation::DeleteRotator {
                    name: name.to_string(),
                },
                self.now(),
            )
            .await?;
        Ok(())
    }
}
