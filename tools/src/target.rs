//! How client commands find the cluster: `--cluster ADDR[,ADDR...]` or
//! `GOVFS_CLUSTER`, and the key from `--key-file` or `GOVFS_KEY_FILE`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use govfs_client::{Client, ClientOptions};
use govfs_net::ClusterKey;

#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Node addresses, comma separated [env: GOVFS_CLUSTER].
    #[arg(long, env = "GOVFS_CLUSTER")]
    pub cluster: String,
    /// File holding the cluster key in hex [env: GOVFS_KEY_FILE].
    #[arg(long, env = "GOVFS_KEY_FILE")]
    pub key_file: PathBuf,
}

impl Target {
    pub fn addrs(&self) -> Result<Vec<SocketAddr>, String> {
        let addrs: Result<Vec<SocketAddr>, _> = self
            .cluster
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect();
        match addrs {
            Ok(a) if !a.is_empty() => Ok(a),
            Ok(_) => Err("--cluster names no address".into()),
            Err(e) => Err(format!("--cluster {:?}: {e}", self.cluster)),
        }
    }

    pub fn key(&self) -> Result<ClusterKey, String> {
        ClusterKey::from_file(&self.key_file)
            .map_err(|e| format!("key file {}: {e}", self.key_file.display()))
    }

    pub async fn client(&self) -> Result<Client, String> {
        let options = ClientOptions::with_timeout(Duration::from_secs(2));
        Client::connect(self.addrs()?, self.key()?, options)
            .await
            .map_err(|e| e.to_string())
    }
}
