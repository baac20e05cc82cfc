//! Command-line options to reach etcd (feature `cli`), shared by the `taskflow` CLI and worker programs.

use super::EtcdConfig;

/// `--endpoints`, `--prefix`, `--user`, `--password` (also from `TASKFLOW_ETCD_*` environment variables) and
/// `--no-batching`; flatten it into a clap parser with `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Args)]
pub struct EtcdArgs {
    /// etcd endpoints (comma-separated or repeated).
    #[arg(
        long,
        env = "TASKFLOW_ETCD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// Key prefix (namespace) of the deployment.
    #[arg(long, env = "TASKFLOW_ETCD_PREFIX", default_value = "/taskflow")]
    pub prefix: String,
    /// etcd user (with --password).
    #[arg(long, env = "TASKFLOW_ETCD_USER", requires = "password")]
    pub user: Option<String>,
    /// etcd password.
    #[arg(long, env = "TASKFLOW_ETCD_PASSWORD")]
    pub password: Option<String>,
    /// Send every claim and commit in its own transaction (no batching).
    #[arg(long)]
    pub no_batching: bool,
}

impl EtcdArgs {
    /// The backend configuration these options describe (other settings at their defaults).
    pub fn config(&self) -> EtcdConfig {
        let mut config = EtcdConfig::new(self.endpoints.clone())
            .prefix(self.prefix.clone())
            .batching(!self.no_batching);
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            config = config.user(user.clone(), password.clone());
        }
        config
    }
}
