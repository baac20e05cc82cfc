//! A TCP proxy in front of an etcd member, to cut a client off without iptables: [`Proxy::blackhole`] stops forwarding
//! in both directions while every connection stays open (as packets dropped by a partition: the client sees no
//! error, only silence), [`Proxy::restore`] forwards again (what was held back is delivered, as TCP retransmits it).

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// A TCP proxy to one address, stopped (every connection closed) on drop.
pub struct Proxy {
    port: u16,
    forwarding: watch::Sender<bool>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    /// Listens on an ephemeral loopback port and forwards every connection to `target` (`host:port`).
    pub async fn start(target: impl Into<String>) -> Self {
        let target = target.into();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy's port");
        let port = listener.local_addr().expect("the proxy's address").port();
        let (forwarding, _) = watch::channel(true);
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (forwarding, tasks) = (forwarding.clone(), Arc::clone(&tasks));
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(upstream) = TcpStream::connect(&target).await else {
                        continue;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (upstream_read, upstream_write) = upstream.into_split();
                    let pumps = [
                        tokio::spawn(pump(client_read, upstream_write, forwarding.subscribe())),
                        tokio::spawn(pump(upstream_read, client_write, forwarding.subscribe())),
                    ];
                    let mut tasks = tasks.lock().unwrap();
                    tasks.extend(pumps.iter().map(tokio::task::JoinHandle::abort_handle));
                }
            })
        };
        tasks.lock().unwrap().push(accept.abort_handle());
        Self {
            port,
            forwarding,
            tasks,
        }
    }

    /// The endpoint clients connect to (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops forwarding in both directions; connections stay open.
    pub fn blackhole(&self) {
        self.forwarding.send_replace(false);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.forwarding.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// Copies `from` to `to`, each chunk only while forwarding (a chunk read during a blackhole waits, and reading stops).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut forwarding: watch::Receiver<bool>,
) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if forwarding.wait_for(|on| *on).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
