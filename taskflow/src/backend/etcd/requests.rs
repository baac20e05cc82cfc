//! The backend's single requests besides the batched writes and the range reads: reading one key, granting and
//! revoking leases, opening watches. Each goes through [`Members`](super::members::Members): to the member in use (the
//! leader as far as this process knows), and again (to the next leader) after any transient failure, within the
//! request timeout.

use super::Inner;
use super::error::Fail;

impl Inner {
    /// Reads one key.
    pub(crate) async fn get(&self, key: &str) -> Result<etcd_client::GetResponse, Fail> {
        self.members
            .repeatable(|mut c| async move { c.get(key, None).await })
            .await
    }

    /// Grants a lease of `ttl` seconds. (Granted twice after a lost answer, the spare lease just expires.)
    pub(crate) async fn lease_grant(&self, ttl: i64) -> Result<i64, Fail> {
        let granted = self
            .members
            .repeatable(|mut c| async move { c.lease_grant(ttl, None).await })
            .await?;
        Ok(granted.id())
    }

    /// Revokes a lease. A lease etcd does not know is revoked already (by an attempt whose answer was lost, or it
    /// expired): that is success.
    pub(crate) async fn lease_revoke(&self, lease: i64) -> Result<(), Fail> {
        match self
            .members
            .repeatable(|mut c| async move { c.lease_revoke(lease).await })
            .await
        {
            Ok(_) | Err(Fail::LeaseNotFound(_)) => Ok(()),
            Err(fail) => Err(fail),
        }
    }

    /// Opens a watch.
    pub(crate) async fn watch(
        &self,
        key: &[u8],
        options: &etcd_client::WatchOptions,
    ) -> Result<etcd_client::WatchStream, Fail> {
        self.members
            .repeatable(|mut c| async move { c.watch(key, Some(options.clone())).await })
            .await
    }
}
