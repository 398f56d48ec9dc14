//! A fault-injecting TCP proxy owned by a test: the workers connect to the
//! shared broker or database through it, and the test "stops" that service
//! for them alone by cutting every live connection (reset, as a crashed
//! server or a dropped network does) and refusing new ones until
//! [`Proxy::restore`]. The real services are never touched.

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

#[derive(Default)]
struct Shared {
    refusing: AtomicBool,
    links: Mutex<Vec<AbortHandle>>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a port of its own) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if shared.refusing.load(Ordering::SeqCst) {
                        reset(client);
                        continue;
                    }
                    let link = tokio::spawn(forward(client, upstream));
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

async fn forward(client: TcpStream, upstream: SocketAddr) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    // Aborting this task drops both sockets: resets on both sides.
    let _ = client.set_zero_linger();
    let _ = server.set_zero_linger();
    let (mut client, mut server) = (client, server);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
