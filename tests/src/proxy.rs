//! A fault-injecting TCP proxy owned by a test: the workers connect to the
//! shared broker or database through it, and the test "stops" that service
//! for them alone by cutting every live connection (reset, as a crashed
//! server or a dropped network does) and refusing new ones until
//! [`Proxy::restore`], or by holding every byte ([`Proxy::hold`]: a server
//! that stops answering without closing, which only heartbeats reveal). The
//! real services are never touched.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

struct Shared {
    refusing: AtomicBool,
    links: Mutex<Vec<AbortHandle>>,
    /// True while no byte is forwarded either way.
    held: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a port of its own) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            refusing: AtomicBool::new(false),
            links: Mutex::default(),
            held: tokio::sync::watch::Sender::new(false),
        });
        let accept = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if shared.refusing.load(Ordering::SeqCst) {
                        reset(client);
                        continue;
                    }
                    let link = tokio::spawn(forward(client, upstream, shared.held.subscribe()));
                    let mut links = shared.links.lock().unwrap();
                    links.retain(|link| !link.is_finished());
                    links.push(link.abort_handle());
                }
            }
        })
        .abort_handle();
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// This URL (postgres:// or amqp://) with its host and port replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).expect("a service URL");
        parsed.set_host(Some("127.0.0.1")).unwrap();
        parsed.set_port(Some(self.addr.port())).unwrap();
        parsed.to_string()
    }

    /// The service goes away: live connections are reset, new ones refused.
    pub fn cut(&self) {
        self.shared.refusing.store(true, Ordering::SeqCst);
        for link in self.shared.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// The service is back: new connections are forwarded again.
    pub fn restore(&self) {
        self.shared.refusing.store(false, Ordering::SeqCst);
        self.shared.held.send_replace(false);
    }

    /// The service stops answering: connections stay open, new ones are
    /// accepted, and no byte goes through until [`Proxy::restore`] (or [`Proxy::cut`]).
    pub fn hold(&self) {
        self.shared.held.send_replace(true);
    }

    /// Connections forwarded now.
    pub fn live(&self) -> usize {
        let mut links = self.shared.links.lock().unwrap();
        links.retain(|link| !link.is_finished());
        links.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Closes with a reset (SO_LINGER 0), not a polite FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    held: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    // Aborting this task drops both sockets: resets on both sides.
    let _ = client.set_zero_linger();
    let _ = server.set_zero_linger();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = pump(client_read, server_write, held.clone()) => {}
        _ = pump(server_read, client_write, held) => {}
    }
}

/// Copies `from` to `to`, waiting while the proxy holds.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut held: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0; 64 * 1024];
    loop {
        if held.wait_for(|held| !held).await.is_err() {
            return;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if held.wait_for(|held| !held).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
